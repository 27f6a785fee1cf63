"""The Di4C estimator and loss terms against brute-force enumeration on tiny D and S."""

import copy
import itertools
import math

import pytest
import torch

from di4c.distill import di4c_loss
from di4c.loss import (
    consistency_loss,
    correlation_term,
    data_loss,
    distillation_loss,
    log_marginals,
    log_mixture_likelihood,
    marginal_term,
)
from di4c.networks.small import MLPDenoiser
from di4c.processes import GaussianRateProcess, MaskedProcess
from di4c.settings import paper_rules
from di4c.settings.rules import DistillRules
from di4c.theory.exact import ExactPosterior

F64 = torch.float64
B, K, D, S = 2, 3, 3, 2


def _logp(seed=0, b=B, k=K, d=D, s=S):
    g = torch.Generator().manual_seed(seed)
    return torch.log_softmax(torch.randn(b, k, d, s, generator=g, dtype=F64), -1)


def _all_x(d=D, s=S):
    return torch.tensor(list(itertools.product(range(s), repeat=d)))


def _joint(probs_kds):
    """Full joint over S^D of each product component, (K, S^D)."""
    xs = _all_x(probs_kds.shape[1], probs_kds.shape[2])
    return torch.stack(
        [
            probs_kds[k, torch.arange(xs.shape[1]), xs].prod(-1)
            for k in range(probs_kds.shape[0])
        ]
    )


def test_mixture_likelihood_and_marginals_by_enumeration():
    lp = _logp()
    xs = _all_x()
    for b in range(B):
        comps = _joint(lp[b].exp())  # (K, S^D)
        q = comps.mean(0)
        got = log_mixture_likelihood(lp, xs[None].expand(B, -1, -1))[b]
        assert torch.allclose(got, q.log(), atol=1e-12)
        assert torch.allclose(q.sum(), torch.tensor(1.0, dtype=F64))
        # marginals average probabilities, not logits (the mixture's marginal, Sec. 4)
        m = log_marginals(lp)[b].exp()
        for d in range(D):
            for v in range(S):
                assert torch.isclose(m[d, v], q[xs[:, d] == v].sum(), atol=1e-12)
        q_bar = (m[torch.arange(D), xs]).prod(-1)
        c = correlation_term(lp, xs[None].expand(B, -1, -1))[b]
        assert torch.allclose(c, -(q.log() - q_bar.log()), atol=1e-12)
        c_off = correlation_term(lp, xs[None].expand(B, -1, -1), use_cv=False)[b]
        assert torch.allclose(c_off, -q.log(), atol=1e-12)


def _kl(p, q):
    m = p > 0
    return float((p[m] * (p[m].log() - q[m].log())).sum())


def _entropy(p):
    m = p > 0
    return float(-(p[m] * p[m].log()).sum())


def test_consistency_expectation_by_enumeration():
    """E_y[L_consis] = KL(T || q_hat) - TC(T) (cv on) and CE(T, q_hat) (cv off)."""
    lp = _logp(1)
    pi = _logp(2).exp()  # detached targets pi_i, (B, K, D, S)
    xs = _all_x()
    for b in range(B):
        q = _joint(lp[b].exp()).mean(0)
        comps_T = _joint(pi[b])  # (K, S^D)
        T = comps_T.mean(0)
        P = pi[b].mean(0)
        tc = sum(_entropy(P[d]) for d in range(D)) - _entropy(T)
        for use_cv in (True, False):
            exp_val = 0.0
            # enumerate every y_i for every copy i: the loss is additive over i
            Mterm = (
                float(
                    marginal_term(pi[b : b + 1].mean(1), log_marginals(lp[b : b + 1]))[
                        0
                    ]
                )
                if use_cv
                else 0.0
            )
            for i in range(K):
                cvals = correlation_term(lp[b : b + 1], xs[None], use_cv)[0]
                exp_val += float((comps_T[i] * cvals).sum()) / K
            exp_val += Mterm
            want = _kl(T, q) - tc if use_cv else _kl(T, q) + _entropy(T)
            assert exp_val == pytest.approx(want, abs=1e-10)
            # and the function itself, averaged over every joint choice of (y_1..y_K)
            if b == 0 and use_cv:
                total, mass = 0.0, 0.0
                for idx in itertools.product(range(xs.shape[0]), repeat=K):
                    w = math.prod(float(comps_T[i, j]) for i, j in enumerate(idx))
                    y = xs[list(idx)][None]
                    total += w * float(consistency_loss(lp[:1], pi[:1], y, use_cv)[0])
                    mass += w
                assert mass == pytest.approx(1.0)
                assert total == pytest.approx(want, abs=1e-10)


def test_k1_reduces_to_product_kl():
    lp = _logp(3, k=1)
    pi = _logp(4, k=1).exp()
    g = torch.Generator().manual_seed(0)
    y = torch.stack(
        [torch.multinomial(pi[b, 0], 1, generator=g)[:, 0] for b in range(B)]
    )[:, None]
    assert torch.allclose(
        correlation_term(lp, y), torch.zeros(B, 1, dtype=F64), atol=1e-12
    )
    want = (pi[:, 0] * (pi[:, 0].log() - lp[:, 0])).sum((-1, -2))
    assert torch.allclose(consistency_loss(lp, pi, y), want, atol=1e-12)
    teacher = _logp(5, k=1)[:, 0]
    x0 = y[:, 0]
    assert torch.allclose(
        data_loss(lp, x0, teacher, torch.ones(B)),
        (teacher.exp() * (teacher - lp[:, 0])).sum((-1, -2)),
        atol=1e-12,
    )


def test_distillation_is_per_component_and_data_term():
    lp = _logp(6)
    teacher = _logp(7, k=1)[:, 0]
    want = torch.tensor(
        [
            sum(
                _kl(teacher[b, d].exp(), lp[b, k, d].exp())
                for k in range(K)
                for d in range(D)
            )
            / K
            for b in range(B)
        ]
    )
    assert torch.allclose(distillation_loss(teacher, lp), want.to(F64), atol=1e-12)
    # per-copy teacher (B, K, D, S) gives the same when all copies are equal
    assert torch.allclose(
        distillation_loss(teacher[:, None].expand(B, K, D, S), lp),
        want.to(F64),
        atol=1e-12,
    )
    x0 = torch.tensor([[0, 1, 1], [1, 0, 0]])
    alpha = torch.tensor([0.3, 2.0], dtype=F64)
    m = log_marginals(lp)
    for b in range(B):
        q = _joint(lp[b].exp()).mean(0)
        idx = int(sum(int(x0[b, d]) * S ** (D - 1 - d) for d in range(D)))
        q_bar = math.exp(sum(float(m[b, d, x0[b, d]]) for d in range(D)))
        kl_marg = sum(_kl(teacher[b, d].exp(), m[b, d].exp()) for d in range(D))
        want_b = float(alpha[b]) * -(math.log(q[idx]) - math.log(q_bar)) + kl_marg
        assert float(data_loss(lp, x0, teacher, alpha)[b]) == pytest.approx(
            want_b, abs=1e-10
        )
        assert float(
            data_loss(lp, x0, teacher, alpha, use_cv=False)[b]
        ) == pytest.approx(-float(alpha[b]) * math.log(q[idx]), abs=1e-10)


def test_loss_zero_when_student_equals_a_product_teacher():
    teacher = _logp(8, k=1)
    lp = teacher.expand(B, K, D, S)
    assert torch.allclose(
        distillation_loss(teacher[:, 0], lp), torch.zeros(B, dtype=F64), atol=1e-12
    )
    x0 = torch.zeros(B, D, dtype=torch.long)
    assert torch.allclose(
        data_loss(lp, x0, teacher[:, 0], torch.ones(B)),
        torch.zeros(B, dtype=F64),
        atol=1e-12,
    )


def test_consistency_target_is_detached():
    lp = _logp(9).requires_grad_(True)
    pi = _logp(10).exp().requires_grad_(True)
    y = torch.zeros(B, K, D, dtype=torch.long)
    consistency_loss(lp, pi, y).sum().backward()
    assert pi.grad is None and lp.grad is not None and lp.grad.abs().sum() > 0


class _Recorder(torch.nn.Module):
    """Wrap a student and record, per call, whether autograd tracks its output."""

    def __init__(self, net):
        super().__init__()
        self.net, self.calls = net, []
        self.is_mixture = True
        self.num_classes = net.num_classes

    def forward(self, x, t, lam=None, cond=None):
        out = self.net(x, t, lam, cond)
        self.calls.append((out.requires_grad, self.training))
        return out


@pytest.mark.parametrize("setting", ["cifar10", "openwebtext"])
def test_gradients_reach_only_the_student_at_t(setting):
    torch.manual_seed(0)
    if setting == "cifar10":
        proc = GaussianRateProcess(S=3, dtype=F64, clamp_below=0)
        rules = paper_rules("cifar10", K=4)
    else:
        proc = MaskedProcess(3, "linear", dtype=F64)
        rules = paper_rules(
            "openwebtext",
            K=4,
            time_kwargs=dict(T=1024, distil_prob=0.0, distil_delta=0.02),
        )
    data = torch.full((27,), 1 / 27, dtype=F64)
    teacher = ExactPosterior(proc, data, 3)
    net = MLPDenoiser(3, proc.num_states, 3, hidden=16, mixture=True)
    torch.nn.init.normal_(net.lam_dense[0].weight, std=0.5)  # make the lambda path live
    student = _Recorder(net)
    x0 = torch.randint(0, 3, (5, 3), generator=torch.Generator().manual_seed(0))
    parts = di4c_loss(
        student, teacher, proc, x0, rules, torch.Generator().manual_seed(1)
    )
    grad_calls = [c for c in student.calls if c[0]]
    nograd_calls = [c for c in student.calls if not c[0]]
    assert len(nograd_calls) == 1  # the stop-grad u-branch target
    assert (
        nograd_calls[0][1] == rules.target_train_mode
    )  # train mode (CIFAR) / eval (OWT)
    assert len(grad_calls) == (
        2 if setting == "cifar10" else 1
    )  # t (and delta for CIFAR)
    # gradient equals that of the same loss with a frozen *copy* as the u-branch target:
    parts.total.backward()
    g1 = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    frozen = copy.deepcopy(net).requires_grad_(False)

    class Split(torch.nn.Module):
        is_mixture, num_classes = True, 3

        def __init__(self):
            super().__init__()
            self.live, self.n = net, 0

        def forward(self, x, t, lam=None, cond=None):
            self.n += 1
            target_call = (setting == "cifar10" and self.n == 3) or (
                setting != "cifar10" and self.n == 2
            )
            return (frozen if target_call else self.live)(x, t, lam, cond)

    di4c_loss(
        Split(), teacher, proc, x0, rules, torch.Generator().manual_seed(1)
    ).total.backward()
    for a, p in zip(g1, net.parameters()):
        assert torch.allclose(a, p.grad, atol=1e-6)


def test_settings_table():
    """The paper's rules of each setting (the values the adapters cite)."""
    rules = {s: paper_rules(s) for s in ("cifar10", "imagenet", "openwebtext")}
    assert all(isinstance(r, DistillRules) for r in rules.values())
    assert (rules["cifar10"].K, rules["imagenet"].K, rules["openwebtext"].K) == (
        16,
        32,
        16,
    )
    assert (
        rules["imagenet"].distil_weight == 20 and rules["imagenet"].alpha_const == 0.1
    )
    assert (
        rules["cifar10"].target_train_mode
        and not rules["openwebtext"].target_train_mode
    )
    assert not rules["imagenet"].target_train_mode
    assert (rules["cifar10"].time_sampler, rules["imagenet"].time_sampler) == (
        "tauldr",
        "maskgit",
    )
    # overrides replace single fields and are validated like the defaults
    k4 = paper_rules("cifar10", K=4)
    assert k4.K == 4 and k4.lr == rules["cifar10"].lr
    assert DistillRules.from_dict({"K": 4}).K == 4
    with pytest.raises(ValueError, match="unknown distillation rule"):
        paper_rules("cifar10", KK=3)
    with pytest.raises(ValueError, match="unknown setting"):
        paper_rules("cifar100")
    with pytest.raises(ValueError, match="K must be >= 1"):
        paper_rules("imagenet", K=0)
