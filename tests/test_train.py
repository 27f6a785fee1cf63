"""Training loop: deterministic batches, EMA warm-up, resume equals an uninterrupted run."""

import pytest
import torch

from di4c.checkpoints import load_container
from di4c.train import CHECKPOINT_NAME, EMA, TrainConfig, batch_indices, train


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
