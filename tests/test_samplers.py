"""Samplers: seed/batch invariance, step accounting, schedules, CFG, exactness against enumeration."""

import pytest
import torch

from di4c.denoiser import CallableDenoiser
from di4c.processes import GaussianRateProcess, MaskedProcess
from di4c.samplers import (
    SampleRNG,
    analytical_sample,
    ancestral_sample,
    cfg_ramp,
    confidence_sample,
    hybrid_schedule,
    unmask_schedule,
)
from di4c.samplers.confidence import UNCOND
from di4c.theory.exact import (
    ExactPosterior,
    embed,
    enumerate_states,
    sampler_distribution,
    state_index,
)

F64 = torch.float64


def _table_denoiser(num_states, D, S, mixture=False, seed=0, cond_classes=0):
    """A deterministic denoiser: logits are a fixed function of (x_t, lambda, label)."""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(D * num_states, D * S, generator=g)
    V = torch.randn(D * S, generator=g)
    C = torch.randn(max(cond_classes, 1) + 1, D * S, generator=g)

    def fn(x, t, lam, cond):
        h = torch.nn.functional.one_hot(x, num_states).float().flatten(1) @ W
        if mixture:
            h = h + 3 * torch.sin(6.28 * lam)[:, None] * V
        if cond is not None:
            h = h + C[torch.where(cond < 0, C.shape[0] - 1, cond)]
        return torch.log_softmax(h.view(-1, D, S), -1)

    return CallableDenoiser(fn, S, is_mixture=mixture)


SEEDS = list(range(100, 107))


def _run(kind, seeds):
    rng = SampleRNG(seeds)
    if kind == "analytical":
        proc = GaussianRateProcess(S=5)
        den = _table_denoiser(5, 4, 5, mixture=True)
        return analytical_sample(proc, den, 4, rng, 4).x
    if kind == "ancestral":
        proc = MaskedProcess(5, "loglinear")
        den = _table_denoiser(6, 4, 5, mixture=True)
        return ancestral_sample(proc, den, 3, rng, 4).x
    proc = MaskedProcess(6)  # mask id 6
    den = _table_denoiser(7, 16, 7, mixture=True, cond_classes=3)
    labels = torch.tensor([s % 3 for s in seeds])
    return confidence_sample(proc, den, 4, rng, 16, labels, guidance=2.0).x


@pytest.mark.parametrize("kind", ["analytical", "ancestral", "confidence"])
def test_same_seeds_same_samples_at_any_batch_size(kind):
    full = _run(kind, SEEDS)
    parts = torch.cat(
        [_run(kind, SEEDS[:3]), _run(kind, SEEDS[3:4]), _run(kind, SEEDS[4:])]
    )
    assert torch.equal(full, parts)
    shuffled = _run(kind, SEEDS[::-1])
    assert torch.equal(full, shuffled.flip(0))
    assert not torch.equal(_run(kind, [1, 2, 3]), _run(kind, [4, 5, 6]))


def test_hybrid_step_accounting():
    proc = GaussianRateProcess(S=4)
    calls = []

    def make(name):
        def fn(x, t, lam, cond):
            calls.append((name, round(float(t[0]), 6)))
            return torch.log_softmax(torch.zeros(x.shape[0], x.shape[1], 4), -1)

        return CallableDenoiser(fn, 4, is_mixture=(name == "student"))

    student, teacher = make("student"), make("teacher")
    out = analytical_sample(
        proc, hybrid_schedule(student, teacher, 10, 3), 10, SampleRNG([0, 1]), 3
    )
    assert out.nfe == 10 and len(calls) == 10
    assert [c[0] for c in calls] == ["student"] * 7 + [
        "teacher"
    ] * 3  # "-n 10 -l 3" -> 7_3
    ts = torch.linspace(1, 0.01, 10)
    assert [c[1] for c in calls] == [
        round(float(v), 6) for v in ts
    ]  # final argmax at t_min
    with pytest.raises(ValueError, match="teacher_last"):
        hybrid_schedule(student, teacher, 4, 5)


def _recording(den, name, log):
    """The same denoiser, logging (name, x_t) of every call."""

    def fn(x, t, lam, cond):
        log.append((name, x.clone()))
        return den(x, t, lam, cond)

    return CallableDenoiser(fn, den.num_classes, den.is_mixture)


HYBRID_SETUPS = {  # sampler -> (process, num_states, D, options)
    "analytical": (lambda: GaussianRateProcess(S=5), 5, 4, {}),
    "ancestral": (lambda: MaskedProcess(5, "loglinear"), 6, 8, {}),
    "confidence": (lambda: MaskedProcess(6), 7, 16, {"guidance": 2.0}),
}


@pytest.mark.parametrize("kind", sorted(HYBRID_SETUPS))
def test_one_hybrid_rule_for_every_sampler(kind):
    """hybrid_schedule(student, teacher, N, L): the student's N - L steps, then the
    teacher's L (sony/di4c tauldr/scripts/distil_sample.py ``-n N -l L``) in every
    sampler; before the teacher's first step the state is the student run's own."""
    from di4c.samplers import SAMPLERS

    make_proc, n_states, D, opts = HYBRID_SETUPS[kind]
    proc, S = make_proc(), 7 if kind == "confidence" else 5
    cond = torch.tensor([0, 1, 2]) if kind == "confidence" else None
    student = _table_denoiser(n_states, D, S, mixture=True, seed=1, cond_classes=3)
    teacher = _table_denoiser(n_states, D, S, mixture=False, seed=2, cond_classes=3)
    N, seeds = 4, [5, 6, 7]

    def run(L, log):
        s, t = _recording(student, "s", log), _recording(teacher, "t", log)
        per_step = hybrid_schedule(s, t, N, L)
        return SAMPLERS[kind](proc, per_step, N, SampleRNG(seeds), D, cond, **opts).x

    logs = {L: [] for L in range(N + 1)}
    out = {L: run(L, logs[L]) for L in range(N + 1)}
    alone = {}
    for name, den in (("s", student), ("t", teacher)):
        alone[name] = SAMPLERS[kind](proc, den, N, SampleRNG(seeds), D, cond, **opts).x
    assert torch.equal(out[0], alone["s"]) and torch.equal(out[N], alone["t"])
    assert not torch.equal(alone["s"], alone["t"])
    for L in range(N + 1):
        names = [n for n, _ in logs[L]]
        want = ["s"] * (N - L) + ["t"] * L
        # the ancestral sampler skips calls once nothing is masked: a prefix
        assert names == want[: len(names)] and len(names) >= N - L
        if kind != "ancestral":
            assert len(names) == N
        for k in range(min(N - L + 1, len(names))):  # states up to the hand-over
            assert torch.equal(logs[L][k][1], logs[0][k][1])


def test_confidence_commits_the_unmask_schedule():
    """Step i's input has sum(schedule[:i]) committed tokens per sample; the output none masked."""
    log = []
    table = _table_denoiser(7, 16, 7, mixture=True, cond_classes=3)

    def no_mask_class(x, t, lam, cond):
        # the authors' sampler may draw the mask class itself (it stays masked); a
        # denoiser that never predicts it commits exactly the schedule
        logp = table(x, t, lam, cond).clone()
        logp[..., 6] = -1e4  # finite: CFG combines two of these
        return logp.log_softmax(-1)

    den = _recording(CallableDenoiser(no_mask_class, 7, is_mixture=True), "s", log)
    out = confidence_sample(
        MaskedProcess(6), den, 4, SampleRNG([1, 2, 3]), 16, torch.tensor([0, 1, 2])
    )
    sched = unmask_schedule(4, 16)
    assert sched == [3, 2, 4, 7] and out.nfe == 4
    # step 0 unguided (one pass of B rows), then conditional + unconditional halves
    assert [x.shape[0] for _, x in log] == [3, 6, 6, 6]
    for i, (_, x) in enumerate(log):
        committed = (x[:3] != 6).sum(1)
        assert committed.tolist() == [sum(sched[:i])] * 3
        assert torch.equal(x[:3], x[3:]) or i == 0  # both CFG halves share x_t
    assert (out.x != 6).all() and int(out.x.max()) <= 5


def test_final_step_is_argmax():
    proc = GaussianRateProcess(S=4)
    logits = torch.log_softmax(torch.tensor([0.0, 3.0, 0.0, 0.0]), -1)
    den = CallableDenoiser(
        lambda x, t, lam, c: logits.expand(x.shape[0], x.shape[1], 4), 4
    )
    assert (analytical_sample(proc, den, 1, SampleRNG(range(50)), 3).x == 1).all()


def test_unmask_schedule_and_cfg_ramp():
    assert unmask_schedule(4) == [41, 44, 53, 118]
    assert unmask_schedule(8) == [20, 21, 22, 22, 25, 28, 36, 82]
    assert unmask_schedule(16) == [
        10,
        10,
        11,
        10,
        11,
        11,
        11,
        11,
        12,
        13,
        14,
        14,
        17,
        19,
        24,
        58,
    ]
    for n in (1, 2, 3, 5, 12):
        assert sum(unmask_schedule(n, 64)) == 64
    assert [cfg_ramp(i, 4, 6.0) for i in range(4)] == [0.0, 2.0, 4.0, 6.0]
    assert cfg_ramp(0, 1, 3.0) == 0.0


def test_confidence_cfg_same_lambda_both_halves():
    seen = []

    def fn(x, t, lam, cond):
        seen.append((lam.clone(), cond.clone()))
        return torch.log_softmax(torch.zeros(x.shape[0], x.shape[1], 5), -1)

    den = CallableDenoiser(fn, 5, is_mixture=True)
    proc = MaskedProcess(4)
    assert proc.mask_id == 4
    out = confidence_sample(
        proc, den, 3, SampleRNG([1, 2]), 8, torch.tensor([0, 1]), guidance=1.0
    )
    assert (out.x != 4).all() and out.nfe == 3
    assert seen[0][0].shape == (2,)  # step 0 is unguided: one pass
    lam, cond = seen[1]
    assert torch.equal(lam[:2], lam[2:]) and torch.equal(
        cond[2:], torch.full((2,), UNCOND)
    )


def _empirical(x, n, D):
    idx = state_index(x, n)
    return torch.bincount(idx, minlength=n**D).double() / x.shape[0]


def test_ancestral_sampler_matches_exact_law():
    """Monte Carlo of the sampler agrees with the exact enumeration of the same sampler."""
    proc = MaskedProcess(3, "linear", dtype=F64)
    data = torch.rand(27, generator=torch.Generator().manual_seed(3), dtype=F64)
    data /= data.sum()
    teacher = ExactPosterior(proc, data, 3)
    n = 20000
    x = ancestral_sample(proc, teacher, 2, SampleRNG(range(n)), 3, t_end=0.0).x
    start = torch.zeros(4**3, dtype=F64)
    start[-1] = 1
    exact = sampler_distribution(proc, teacher, 2, 3, start)
    emp = _empirical(x, 4, 3)
    assert 0.5 * (emp - exact).abs().sum() < 0.03
    # and the sampler is Theorem 1's product sampler: N = 1 gives the product of data marginals
    x1 = ancestral_sample(proc, teacher, 1, SampleRNG(range(n)), 3, t_end=0.0).x
    marg = [torch.bincount(x1[:, d], minlength=3).double() / n for d in range(3)]
    states = enumerate_states(3, 3)
    true_marg = [
        torch.zeros(3, dtype=F64).index_add_(0, states[:, d], data) for d in range(3)
    ]
    for d in range(3):
        assert torch.allclose(marg[d], true_marg[d], atol=0.015)


def test_analytical_sampler_matches_exact_law():
    proc = GaussianRateProcess(S=3, dtype=F64, clamp_below=0)
    data = torch.rand(9, generator=torch.Generator().manual_seed(4), dtype=F64)
    data /= data.sum()
    teacher = ExactPosterior(proc, data, 2)
    n = 20000
    x = analytical_sample(
        proc, teacher, 3, SampleRNG(range(n)), 2, t_min=0.2, eps=0.0
    ).x
    # exact law: prior start, two analytical steps 1 -> 0.6 -> 0.2, then argmax at 0.2
    start = torch.outer(proc.prior_probs(), proc.prior_probs()).flatten().double()
    law = sampler_distribution(proc, teacher, 2, 2, start, t_max=1.0, t_end=0.2)
    states = enumerate_states(3, 2)
    am = teacher(states, torch.full((9,), 0.2, dtype=F64)).argmax(-1)
    final = torch.zeros(9, dtype=F64).index_add_(0, state_index(am, 3), law)
    emp = _empirical(x, 3, 2)
    assert 0.5 * (emp - final).abs().sum() < 0.03
    assert embed(data, 3, 3, 2).shape == (9,)


def test_bad_sampler_inputs():
    proc = MaskedProcess(3)
    den = _table_denoiser(4, 2, 3)
    with pytest.raises(ValueError, match="num_steps"):
        ancestral_sample(proc, den, 0, SampleRNG([0]), 2)
    with pytest.raises(ValueError, match="t_end"):
        ancestral_sample(proc, den, 2, SampleRNG([0]), 2, t_end=1.5)
    with pytest.raises(ValueError, match="seeds"):
        SampleRNG([])
    with pytest.raises(ValueError, match="labels"):
        confidence_sample(proc, den, 2, SampleRNG([0, 1]), 2, torch.tensor([0]))
