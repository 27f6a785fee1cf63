"""NetDenoiser and the three network adapters beside their networks: train/eval
reach the network, lambda handling, inputs moved to the network's device."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from di4c.denoiser import Denoiser, NetDenoiser
from di4c.distill import _mode
from di4c.networks.dit import DIT, DiTConfig, DiTDenoiser
from di4c.networks.maskgit import MaskGITConfig, MaskGITDenoiser, MaskTransformer
from di4c.networks.tauldr_unet import TauLDRDenoiser, TauLDRUNet, TauLDRUNetConfig

B = 3
TAULDR = TauLDRUNetConfig(
    S=5,
    image_shape=(1, 4, 4),
    ch=8,
    ch_mult=(1,),
    num_res_blocks=1,
    attn_scale=0,
    time_embed_dim=8,
    dropout=0.3,
)
MASKGIT = MaskGITConfig(
    img_size=64,
    hidden_dim=32,
    codebook_size=16,
    depth=1,
    heads=2,
    mlp_dim=64,
    nclass=10,
    dropout=0.3,
)
DIT_CFG = DiTConfig(
    hidden_size=32,
    cond_dim=16,
    n_blocks=1,
    n_heads=2,
    vocab_size=20,
    length=6,
    dropout=0.3,
)


def _randomised(net: nn.Module, seed: int = 0) -> nn.Module:
    """Every weight random (zero-initialised lambda paths would hide lambda)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=g))
    return net


def _make(family: str, mixture: bool):
    """(denoiser, x_t, t) of a small network of ``family`` (dropout 0.3)."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    t = torch.rand(B, generator=g)
    if family == "tauldr":
        cfg = TAULDR.as_student() if mixture else TAULDR.as_teacher()
        x = torch.randint(0, cfg.S, (B, cfg.num_dims), generator=g)
        return TauLDRDenoiser(_randomised(TauLDRUNet(cfg))), x, t
    if family == "maskgit":
        cfg = MASKGIT.as_student() if mixture else MASKGIT.as_teacher()
        x = torch.randint(0, cfg.codebook_size + 1, (B, cfg.num_tokens), generator=g)
        return MaskGITDenoiser(_randomised(MaskTransformer(cfg))), x, t
    cfg = dataclasses.replace(DIT_CFG, is_di4c=mixture)
    x = torch.randint(0, cfg.vocab_size, (B, cfg.length), generator=g)
    return DiTDenoiser(_randomised(DIT(cfg))), x, t


FAMILIES = ["tauldr", "maskgit", "dit"]


@pytest.mark.parametrize("family", FAMILIES)
def test_adapters_are_denoisers(family):
    for mixture in (False, True):
        den, x, t = _make(family, mixture)
        assert isinstance(den, NetDenoiser) and isinstance(den, Denoiser)
        assert den.is_mixture is mixture
        assert den.device == torch.device("cpu")
        den.eval()
        with torch.no_grad():
            out = den(x, t)
        assert out.shape == (*x.shape, den.num_classes)
        assert torch.allclose(out.exp().sum(-1), torch.ones(x.shape), atol=1e-4)


@pytest.mark.parametrize("family", FAMILIES)
def test_train_and_eval_reach_the_network(family):
    den, x, t = _make(family, mixture=True)
    lam = torch.rand(B, generator=torch.Generator().manual_seed(2))
    assert den.train() is den and den.training and den.net.training
    with torch.no_grad():
        a, b = den(x, t, lam), den(x, t, lam)
    assert not torch.equal(a, b)  # dropout is on
    assert den.eval() is den and not den.training and not den.net.training
    with torch.no_grad():
        a, b = den(x, t, lam), den(x, t, lam)
    assert torch.equal(a, b)  # dropout is off
    den.train()
    with _mode(den, False):  # the Di4C loss's stop-grad target branch
        assert not den.net.training
    assert den.net.training


@pytest.mark.parametrize("family", FAMILIES)
def test_mixture_draws_lambda_product_ignores_it(family):
    den, x, t = _make(family, mixture=True)
    den.eval()
    with torch.no_grad():
        den.generator = torch.Generator().manual_seed(7)
        drawn = den(x, t)
        lam = torch.rand(B, generator=torch.Generator().manual_seed(7))
        assert torch.equal(drawn, den(x, t, lam))  # one fresh lambda per sample
        assert not torch.equal(drawn, den(x, t, 1 - lam))  # lambda matters
        drawn_again = den(x, t)  # generator advanced: new draws
        assert not torch.equal(drawn, drawn_again)

    prod, x, t = _make(family, mixture=False)
    prod.eval()
    seen = []
    lam_arg = 3 if family == "maskgit" else 2  # forward(x, [labels, drop,] t, lam)
    hook = prod.net.register_forward_pre_hook(
        lambda mod, args: seen.append(args[lam_arg])
    )
    with torch.no_grad():
        a = prod(x, t, torch.full((B,), 0.9))
        b = prod(x, t)
    hook.remove()
    assert torch.equal(a, b) and seen == [None, None]  # the network got lam=None


class _Probe(NetDenoiser):
    """Records where its inputs arrive."""

    def __init__(self, net, mixture):
        super().__init__(net, 4)
        self.mixture, self.seen = mixture, None

    @property
    def is_mixture(self):
        return self.mixture

    def log_probs(self, x_t, t, lam, cond):
        self.seen = (x_t, t, lam, cond)
        return torch.zeros(*x_t.shape, 4, device=x_t.device)


def test_inputs_are_moved_to_the_network_device():
    with torch.device("meta"):
        net = nn.Linear(2, 2)
    x, t = torch.zeros(B, 5, dtype=torch.long), torch.rand(B)
    for mixture, lam in ((True, None), (True, torch.rand(B)), (False, torch.rand(B))):
        den = _Probe(net, mixture)
        assert den.device.type == "meta"
        out = den(x, t, lam, torch.zeros(B, dtype=torch.long))
        assert out.device.type == "meta"
        x_m, t_m, lam_m, cond_m = den.seen
        assert {x_m.device.type, t_m.device.type, cond_m.device.type} == {"meta"}
        assert (lam_m is None) if not mixture else lam_m.device.type == "meta"
    with pytest.raises(ValueError, match="t must have shape"):
        _Probe(net, False)(x, torch.rand(B + 1))  # checked before anything runs


def test_a_real_network_on_another_device_gets_its_inputs_there():
    """The DiT built on the meta device runs from CPU inputs (shape-only pass)."""
    with torch.device("meta"):
        net = DIT(dataclasses.replace(DIT_CFG, is_di4c=True))
    den = DiTDenoiser(net)
    x = torch.randint(0, DIT_CFG.vocab_size, (B, DIT_CFG.length))
    out = den(x, torch.rand(B))
    assert out.device.type == "meta" and out.shape == (B, DIT_CFG.length, 20)


def test_cond_is_refused_by_unconditional_networks():
    for family in ("tauldr", "dit"):
        den, x, t = _make(family, mixture=False)
        with pytest.raises(ValueError, match="cond must be None"):
            den(x, t, cond=torch.zeros(B, dtype=torch.long))


def test_wrong_inputs_are_refused_at_the_network_boundary():
    """Float ids are not truncated; lambda outside [0, 1] or NaN is refused."""
    for family in FAMILIES:
        den, x, t = _make(family, mixture=True)
        for lam in (torch.full((B,), 5.0), torch.full((B,), float("nan"))):
            with pytest.raises(ValueError, match=r"lam must lie in \[0, 1\]"):
                den(x, t, lam)
        with pytest.raises(ValueError, match="x_t must be an integer tensor"):
            den(x.float(), t)
    den, x, t = _make("maskgit", mixture=False)
    with pytest.raises(ValueError, match="integer class labels"):
        den(x, t, cond=torch.full((B,), 2.7))
    with pytest.raises(ValueError, match="labels must be an integer tensor"):
        den.net(x, torch.full((B,), 2.7))
    with pytest.raises(ValueError, match="img_tokens must be an integer tensor"):
        den.net(x.float(), torch.zeros(B, dtype=torch.long))
    den, x, t = _make("dit", mixture=False)
    with pytest.raises(ValueError, match="indices must be an integer tensor"):
        den.net(x.float(), torch.zeros(B))


@pytest.mark.parametrize("target_train_mode", [True, False])
def test_cifar10_student_wrapper_carries_target_train_mode(target_train_mode):
    """The CIFAR-10 setting's student wrapper passes ``train()`` / ``training`` to
    the network, so the Di4C loss's stop-grad target pass runs in the mode
    ``distill.target_train_mode`` asks for (train mode in the authors'
    ``DistilChain.calc_loss``), and the gradient passes keep the caller's mode."""
    from di4c.distill import di4c_loss
    from di4c.processes import GaussianRateProcess
    from di4c.settings import get_setting, paper_rules

    setting = get_setting("cifar10")
    student_net = _randomised(TauLDRUNet(TAULDR.as_student()))
    teacher_net = _randomised(TauLDRUNet(TAULDR.as_teacher()), seed=1).eval()
    student = setting.denoiser(student_net, {})
    teacher = setting.denoiser(teacher_net, {})
    calls = []
    student_net.register_forward_hook(
        lambda m, i, o: calls.append((o.requires_grad, m.training))
    )
    process = GaussianRateProcess(S=TAULDR.S, rate_sigma=1.0)
    rules = paper_rules("cifar10", K=2, target_train_mode=target_train_mode)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randint(0, TAULDR.S, (B, TAULDR.num_dims), generator=g)
    student.train()
    di4c_loss(student, teacher, process, x0, rules, torch.Generator().manual_seed(1))
    target = [mode for grad, mode in calls if not grad]
    assert target == [target_train_mode]  # the one stop-grad target pass
    assert all(mode for grad, mode in calls if grad)  # the trained passes
    assert student.training and student_net.training  # mode restored
