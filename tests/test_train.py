"""Training loop: deterministic batches, EMA warm-up, resume equals an uninterrupted run."""

import pytest
import torch

from di4c.checkpoints import load_container
from di4c.train import (
    CHECKPOINT_NAME,
    EMA,
    NonFiniteError,
    TrainConfig,
    batch_indices,
    train,
)


def _setup(dropout=0.0):
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(4, 16),
        torch.nn.Tanh(),
        torch.nn.Dropout(dropout),  # draws from torch's global generator
        torch.nn.Linear(16, 1),
    )
    x = torch.randn(37, 4, generator=torch.Generator().manual_seed(1))
    y = x.sum(1, keepdim=True)

    def loss_fn(batch, gen):
        noise = 0.01 * torch.randn(batch["x"].shape, generator=gen)
        return ((net(batch["x"] + noise) - batch["y"]) ** 2).mean()

    return net, {"x": x, "y": y}, loss_fn


def test_batch_indices_are_deterministic_and_cover_epochs():
    a = [batch_indices(10, 3, s, 7) for s in range(3)]
    assert torch.equal(
        torch.cat(a).sort().values, torch.cat(a).unique()
    )  # no repeats inside an epoch
    assert all(torch.equal(x, batch_indices(10, 3, s, 7)) for s, x in enumerate(a))
    assert batch_indices(2, 5, 0, 0).numel() == 5
    with pytest.raises(ValueError, match="empty"):
        batch_indices(0, 2, 0, 0)


def test_ema_warmup_formula():
    net = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        net.weight.fill_(0.0)
    ema = EMA(net, 0.9999)
    with torch.no_grad():
        net.weight.fill_(1.0)
    ema.update(net)  # decay min(0.9999, 2/11)
    assert float(ema.shadow[0]) == pytest.approx(1 - 2 / 11)
    with ema.swapped_in(net):
        assert float(net.weight.detach()) == pytest.approx(1 - 2 / 11)
    assert float(net.weight.detach()) == 1.0


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_resume_is_bit_identical(tmp_path, dropout):
    cfg = TrainConfig(
        iters=40,
        batch_size=8,
        lr=1e-2,
        ema_decay=0.99,
        log_every=10,
        ckpt_every=10,
        seed=3,
    )
    net, data, loss_fn = _setup(dropout)
    ref = train(net, loss_fn, data, cfg)
    ref_w = [p.detach().clone() for p in ref.model.parameters()]
    ref_ema = [s.clone() for s in ref.ema.shadow]

    net, data, loss_fn = _setup(dropout)
    partial = TrainConfig(**{**cfg.__dict__, "iters": 20})
    train(net, loss_fn, data, partial, out_dir=tmp_path)  # "killed" after step 20
    # a fresh process: new model, global generator back at its start state
    net, data, loss_fn = _setup(dropout)
    res = train(net, loss_fn, data, cfg, out_dir=tmp_path)
    assert res.resumed_from == 20
    assert all(torch.equal(a, b) for a, b in zip(ref_w, res.model.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(ref_ema, res.ema.shadow))
    assert (tmp_path / "log.jsonl").read_text().count("\n") == 4


def test_checkpoint_is_weights_only_data(tmp_path):
    """Resume checkpoints load without unpickling objects; RNG and run key survive."""
    cfg = TrainConfig(iters=10, batch_size=8, lr=1e-2, ckpt_every=10, seed=3)
    net, data, loss_fn = _setup(0.3)
    train(net, loss_fn, data, cfg, out_dir=tmp_path, run_key={"teacher": "abc"})
    global_rng = torch.get_rng_state()
    state = load_container(tmp_path / CHECKPOINT_NAME, "training checkpoint")
    assert state["step"] == 10
    assert torch.equal(state["global_rng"]["cpu"], global_rng)
    assert isinstance(state["generator"], torch.Tensor)
    key = state["run_key"]
    assert key["extra"] == {"teacher": "abc"} and key["config"]["seed"] == 3
    assert key["config"]["betas"] == (0.9, 0.999)  # tuples stay tuples


def test_non_finite_loss_is_reported():
    net, data, _ = _setup()
    with pytest.raises(FloatingPointError, match="non-finite loss"):
        train(
            net,
            lambda b, g: net(b["x"]).sum() * float("nan"),
            data,
            TrainConfig(iters=2),
        )
    with pytest.raises(ValueError, match="unknown optimizer"):
        TrainConfig(optimizer="sgdx")


def test_a_checkpoint_of_another_run_is_never_resumed(tmp_path, capsys):
    """A work folder left by a different config / model / data starts over from step 0."""
    cfg = TrainConfig(iters=20, batch_size=8, lr=1e-2, ckpt_every=10, seed=3)
    net, data, loss_fn = _setup()
    fresh = train(net, loss_fn, data, cfg)
    fresh_w = [p.detach().clone() for p in fresh.model.parameters()]

    net, data, loss_fn = _setup()
    other = TrainConfig(**{**cfg.__dict__, "lr": 5e-2})  # an earlier config
    train(net, loss_fn, data, other, out_dir=tmp_path)
    net, data, loss_fn = _setup()
    res = train(net, loss_fn, data, cfg, out_dir=tmp_path)
    assert res.resumed_from == 0
    assert "written by a different run (changed: config)" in capsys.readouterr().out
    assert all(torch.equal(a, b) for a, b in zip(fresh_w, res.model.parameters()))

    net, data, loss_fn = _setup()
    data = {k: v + 1 for k, v in data.items()}  # new data, same config: starts over
    assert train(net, loss_fn, data, cfg, out_dir=tmp_path).resumed_from == 0
    net, data, loss_fn = _setup()
    longer = TrainConfig(**{**cfg.__dict__, "iters": 30})  # a longer run continues
    train(net, loss_fn, data, cfg, out_dir=tmp_path)
    net, data, loss_fn = _setup()
    assert train(net, loss_fn, data, longer, out_dir=tmp_path).resumed_from == 20


def test_train_config_from_a_run_dataclass():
    """from_run takes the namesake fields of a CLI's run dataclass, then overrides."""
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Run:
        iters: int = 7
        lr: float = 3e-3
        ema_decay: float = 0.0
        hidden: int = 64  # a network field: not the loop's

    cfg = TrainConfig.from_run(Run(), optimizer="adamw", ema_decay=None)
    assert (cfg.iters, cfg.lr, cfg.optimizer, cfg.ema_decay) == (7, 3e-3, "adamw", None)
    assert cfg.batch_size == TrainConfig().batch_size  # not in the run: the default
    with pytest.raises(TypeError, match="not TrainConfig fields: \\['hidden'\\]"):
        TrainConfig.from_run(Run(), hidden=3)


class _PoisonedTeacher:
    """The exact posterior of a tiny process, whose log-probabilities turn NaN once
    ``poisoned`` is set (a teacher that breaks mid-distillation)."""

    is_mixture = False

    def __init__(self, proc):
        from di4c.theory.exact import ExactPosterior

        self.exact = ExactPosterior(proc, torch.full((27,), 1 / 27, dtype=F64), 3)
        self.num_classes = 3
        self.poisoned = False

    def __call__(self, x, t, lam=None, cond=None):
        out = self.exact(x, t, lam, cond)
        return out * float("nan") if self.poisoned else out


F64 = torch.float64


def _distill_run(tmp_path, poison_at=None):
    """A 6-step Di4C distillation of a tiny student; the teacher turns NaN after
    ``poison_at`` steps. Returns the student and the error, or the step resumed from."""
    from di4c.distill import di4c_loss, train_config
    from di4c.networks.small import MLPDenoiser
    from di4c.processes import GaussianRateProcess
    from di4c.settings import paper_rules

    proc = GaussianRateProcess(S=3, dtype=F64, clamp_below=0)
    rules = paper_rules(
        "cifar10", K=2, batch_x=4, iters=6, ckpt_every=1, log_every=1, ema_decay=0.9
    )
    torch.manual_seed(0)
    net = MLPDenoiser(3, proc.num_states, 3, hidden=16, mixture=True)
    teacher = _PoisonedTeacher(proc)
    x = torch.randint(0, 3, (20, 3), generator=torch.Generator().manual_seed(0))

    def on_step(done, _):
        teacher.poisoned = poison_at is not None and done >= poison_at

    try:
        res = train(
            net,
            lambda b, g: di4c_loss(net, teacher, proc, b["x0"], rules, g),
            {"x0": x},
            train_config(rules),
            out_dir=tmp_path,
            on_step=on_step,
        )
    except NonFiniteError as e:
        return net, e
    return net, res.resumed_from


def test_a_teacher_turning_nan_keeps_the_last_good_checkpoint(tmp_path):
    """Issue 13 item 1: the poisoned step is refused before the optimiser step, the
    message names the term and the step, the checkpoint on disk stays the last good
    one, and a rerun resumes from it exactly as an uninterrupted run."""
    _, err = _distill_run(tmp_path / "broken", poison_at=3)
    msg = str(err)
    assert "the teacher's log-probabilities at x_t hold" in msg, msg
    assert "at step 4 of 6; the step was not applied" in msg, msg
    assert "last good checkpoint (step 3)" in msg and "learning rate is not" in msg
    state = load_container(tmp_path / "broken" / CHECKPOINT_NAME, "ckpt")
    assert state["step"] == 3
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    assert all(torch.isfinite(s).all() for s in state["ema"]["shadow_params"])

    clean, start = _distill_run(tmp_path / "clean")
    assert start == 0
    resumed, start = _distill_run(tmp_path / "broken")  # the teacher fixed: rerun
    assert start == 3
    assert all(
        torch.equal(a, b) for a, b in zip(clean.parameters(), resumed.parameters())
    )


def test_a_non_finite_gradient_is_refused_before_the_step(tmp_path):
    """A finite loss whose gradient is NaN (sqrt at 0): no step, no checkpoint."""
    net, data, loss_fn = _setup()
    cfg = TrainConfig(iters=3, batch_size=8, lr=1e-2, ckpt_every=1)
    train(net, loss_fn, data, cfg, out_dir=tmp_path)  # 3 good steps, checkpointed
    good = load_container(tmp_path / CHECKPOINT_NAME, "ckpt")
    longer = TrainConfig(**{**cfg.__dict__, "iters": 5})
    net, data, _ = _setup()  # a rerun, now with a loss whose gradient is NaN
    with pytest.raises(NonFiniteError) as info:
        train(
            net,
            lambda b, g: torch.sqrt(net(b["x"]).sum() * 0.0),
            data,
            longer,
            out_dir=tmp_path,
        )
    msg = str(info.value)
    assert "non-finite gradient norm nan (loss terms finite: total 0)" in msg, msg
    assert "at step 4 of 5" in msg and "last good checkpoint (step 3)" in msg, msg
    # the weights are the resumed step-3 ones: the NaN gradient was never applied
    assert all(torch.equal(good["model"][k], v) for k, v in net.state_dict().items())
    after = load_container(tmp_path / CHECKPOINT_NAME, "ckpt")
    assert after["step"] == 3
    assert all(torch.equal(good["model"][k], after["model"][k]) for k in good["model"])
