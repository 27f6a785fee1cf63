"""CIFAR-10 slice: mini network (zero-init lambda path), containers, sampler/hybrid NFE at the CLI level."""

import dataclasses
import json

import pytest
import torch
from di4c.cli.cifar10_common import (
    ProcessConfig,
    checkpoint_info,
    generate,
    load_denoiser,
    net_config_to_dict,
    sample_seeds,
)

from di4c.artifacts import meta_path_for, sha256_file, write_meta
from di4c.cli import cifar10_sample
from di4c.networks.mini_unet import MiniUNetConfig, build_mini_unet
from di4c.networks.tauldr_unet import TauLDRDenoiser
from di4c.teachers.tauldr import init_student, save_checkpoint

SHAPE, S = (1, 8, 8), 8
MINI = MiniUNetConfig(
    ch=8, ch_mult=(1, 2), num_res_blocks=1, attn_scale=1, time_embed_dim=16
)
PROC = ProcessConfig(S=S, rate_sigma=6 * S / 256)


def _save(net, path, ema=None):
    save_checkpoint(net, path, ema_params=ema)
    write_meta(
        path,
        extra={
            "net_config": net_config_to_dict(net.config.as_teacher()),
            "process": vars(PROC),
        },
    )
    return path


@pytest.fixture(scope="module")
def teacher_file(tmp_path_factory):
    net = build_mini_unet(MINI, SHAPE, S, seed=0)
    with torch.no_grad():  # make the output depend on the input (NIN_3 is zero-init)
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    ema = [p.detach() + 0.01 for p in net.parameters()]
    return _save(net, tmp_path_factory.mktemp("c10") / "teacher.pt", ema), net


def test_student_starts_as_the_teacher_for_every_lambda(teacher_file):
    path, raw_teacher = teacher_file
    student = init_student(path, config=checkpoint_info(path)[0], seed=1).eval()
    assert student.is_mixture
    dense1 = [k for k in student.state_dict() if ".dense1." in k]
    assert dense1 and all(not student.state_dict()[k].any() for k in dense1)
    x = torch.randint(0, S, (6, 64))
    t = torch.rand(6)
    ref = raw_teacher.eval()(x, t)  # init_student copies the raw (non-EMA) weights
    for lam in (torch.zeros(6), torch.rand(6), torch.ones(6)):
        assert torch.equal(student(x, t, lam), ref)
    with torch.no_grad():
        student.get_parameter(dense1[0]).normal_()
    out = student(x, t, torch.rand(6))
    assert not torch.allclose(out, ref)
    assert not torch.allclose(out, student(x, t, torch.rand(6)))  # lambda now matters


def test_container_round_trip_uses_ema_and_meta(teacher_file):
    path, raw_teacher = teacher_file
    cfg, proc = checkpoint_info(path)
    assert cfg.image_shape == SHAPE and cfg.S == S and not cfg.lam_embed
    assert proc == PROC
    den, _, _ = load_denoiser(path, "teacher")
    ema_net = build_mini_unet(MINI, SHAPE, S).eval()
    with torch.no_grad():
        for p, q in zip(ema_net.parameters(), raw_teacher.parameters()):
            p.copy_(q + 0.01)
    x, t = torch.randint(0, S, (3, 64)), torch.rand(3)
    assert torch.allclose(den(x, t), torch.log_softmax(ema_net(x, t), -1), atol=1e-6)
    with pytest.raises(Exception, match="teacher"):
        load_denoiser(path, "student")


class Counting:
    """Wrap a denoiser and count the rows it evaluates."""

    def __init__(self, den, name):
        self.den, self.name, self.calls = den, name, 0
        self.num_classes, self.is_mixture = den.num_classes, den.is_mixture

    def __call__(self, x, t, lam=None, cond=None):
        self.calls += 1
        return self.den(x, t, lam, cond)


def test_hybrid_nfe_accounting_and_batch_invariance(teacher_file):
    path, _ = teacher_file
    teacher, cfg, proc = load_denoiser(path, "teacher")
    student_net = init_student(path, config=cfg, seed=1).eval()
    with torch.no_grad():
        for k, p in student_net.named_parameters():
            if ".dense1." in k:
                p.normal_(0, 0.5)
    student = TauLDRDenoiser(student_net)
    process = proc.build()
    seeds = sample_seeds(6, seed=2)
    for n, l in ((1, 1), (4, 1), (5, 2), (3, 0), (3, 3)):
        ct, cs = Counting(teacher, "t"), Counting(student, "s")
        levels, nfe, names = generate(process, cs, ct, n, l, seeds, SHAPE, batch_size=6)
        assert nfe == n and ct.calls == l and cs.calls == n - l
        assert names == ["student"] * (n - l) + ["teacher"] * l
        assert levels.shape == (6, *SHAPE) and levels.dtype == torch.uint8
        assert int(levels.max()) < S
    a, _, _ = generate(process, student, teacher, 4, 1, seeds, SHAPE, batch_size=6)
    b, _, _ = generate(process, student, teacher, 4, 1, seeds, SHAPE, batch_size=4)
    assert torch.equal(a, b)  # a sample depends only on its seed
    c, _, _ = generate(process, student, teacher, 4, 1, sample_seeds(6, 3), SHAPE)
    assert not torch.equal(a, c)


def test_sample_cli_records_hybrid_runs(teacher_file, tmp_path):
    path, _ = teacher_file
    cfg = checkpoint_info(path)[0]
    student = init_student(path, config=cfg, seed=1)
    spath = tmp_path / "student.pt"
    save_checkpoint(student, spath)
    write_meta(spath, extra=json.loads(path.with_name("teacher.meta.json").read_text()))
    out = tmp_path / "hybrid.pt"
    cifar10_sample.main(
        [
            "--model", "hybrid", "--teacher-ckpt", str(path), "--student-ckpt", str(spath),
            "--steps", "4", "6", "--teacher-last", "1", "3", "--num-samples", "5",
            "--out", str(out),
        ]
    )  # fmt: skip
    d = torch.load(out, weights_only=True)
    assert [(r["steps"], r["teacher_last"], r["nfe"]) for r in d["runs"]] == [
        (4, 1, 4),
        (6, 3, 6),
    ]
    assert d["runs"][1]["models"] == ["student"] * 3 + ["teacher"] * 3
    assert d["seeds"] == [0, 1, 2, 3, 4] and d["runs"][0]["levels"].shape == (5, *SHAPE)
    meta = json.loads(meta_path_for(out).read_text())
    assert meta["inputs"]["teacher"]["sha256"] == sha256_file(path)
    assert meta["inputs"]["student"]["sha256"] == sha256_file(spath)
    assert [(r["steps"], r["teacher_last"], r["nfe"]) for r in meta["runs"]] == [
        (4, 1, 4),
        (6, 3, 6),
    ]
    assert "seed=0" in meta["seeds"]["per_sample"]
    with pytest.raises(SystemExit):
        cifar10_sample.main(
            ["--model", "hybrid", "--teacher-ckpt", str(path), "--steps", "4",
             "--teacher-last", "1", "--num-samples", "2", "--out", str(out)]
        )  # fmt: skip


def test_fetch_cli_links_a_local_copy_and_names_the_config_key(
    teacher_file, tmp_path, monkeypatch
):
    from di4c.cli import cifar10_fetch
    from di4c.download import MissingWeightsError

    monkeypatch.setenv("DI4C_CACHE_DIR", str(tmp_path / "cache"))
    path, _ = teacher_file
    out = tmp_path / "w" / "teacher.pt"
    cifar10_fetch.main(["--what", "teacher", "--local", str(path), "--out", str(out)])
    assert out.read_bytes() == path.read_bytes()
    meta = json.loads(out.with_name("teacher.meta.json").read_text())
    assert meta["inputs"]["source"]["path"] == str(path)
    with pytest.raises(SystemExit, match="expected a released_student"):
        cifar10_fetch.main(
            ["--what", "released_student", "--local", str(path), "--out", str(out)]
        )
    with pytest.raises(MissingWeightsError, match="cifar10.paper.student_ckpt"):
        cifar10_fetch.main(
            ["--what", "released_student", "--local", "/nope.pt", "--out", str(out)]
        )


def test_cifar10_loader_offline_names_the_config_key(tmp_path):
    from di4c.data.cifar10 import CIFAR10Unavailable, load_cifar10, random_hflip

    with pytest.raises(CIFAR10Unavailable, match="cifar10.paper.data_root"):
        load_cifar10(tmp_path, download=False)
    x = torch.arange(2 * 3 * 2 * 4).view(2, 3, 2, 4)
    g = torch.Generator().manual_seed(0)
    y = random_hflip(x, g)
    for a, b in zip(x, y):
        assert torch.equal(a, b) or torch.equal(a.flip(-1), b)


def _distill(teacher, data, work, out, iters):
    from di4c.cli import cifar10_distill

    cifar10_distill.main(
        [
            "--scale", "mini", "--teacher-ckpt", str(teacher), "--data", str(data),
            "--out", str(out), "--work-dir", str(work), "--iters", str(iters),
            "--K", "2", "--batch-x", "2", "--lr", "0.01", "--log-every", "1",
            "--ckpt-every", "1", "--threads", "1",
        ]
    )  # fmt: skip
    return json.loads(meta_path_for(out).read_text())


def test_distill_cli_writes_a_loadable_student_and_resumes_exactly(tmp_path):
    """The distillation CLI end to end on a tiny teacher (on a GPU machine: on the GPU).

    A run stopped after 2 steps and resumed to 3 ends bit-identical to an
    uninterrupted 3-step run (the loss's randomness replays from the
    checkpointed generator), the student loads for sampling, and its lambda
    path has left zero. Dropout is off here: its masks come from torch's global
    RNG, which the shared training loop neither seeds nor checkpoints.
    """
    from di4c.cli.cifar10_distill import loss_rng

    from di4c.data.images import ImageDataConfig, load_image_splits, save_splits
    from di4c.teachers.tauldr import read_checkpoint

    net = build_mini_unet(dataclasses.replace(MINI, dropout=0.0), SHAPE, S, seed=0)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    path = _save(net, tmp_path / "teacher.pt")
    data = tmp_path / "data.pt"
    cfg = ImageDataConfig(source="digits", size=8, levels=S, heldout=200, seed=0)
    save_splits(load_image_splits(cfg), data)
    _distill(path, data, tmp_path / "run_a", tmp_path / "a.pt", 2)
    meta = _distill(path, data, tmp_path / "run_a", tmp_path / "a.pt", 3)
    assert meta["resumed_from"] == 2
    assert meta["rules"]["K"] == 2 and meta["process"] == vars(PROC)
    _distill(path, data, tmp_path / "run_b", tmp_path / "b.pt", 3)
    a, b = read_checkpoint(tmp_path / "a.pt"), read_checkpoint(tmp_path / "b.pt")
    assert a.is_student and a.n_iter == 3
    for k in a.raw:
        assert torch.equal(a.raw[k], b.raw[k]), k
        assert torch.equal(a.ema[k], b.ema[k]), k
    assert any(a.raw[k].any() for k in a.raw if ".dense1." in k)  # lambda path live
    student, cfg_s, proc = load_denoiser(tmp_path / "a.pt", "student")
    assert student.is_mixture and cfg_s.image_shape == SHAPE and proc == PROC
    # on the CPU the loss draws from the loop's generator itself
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(loss_rng(g1, "cpu").rand(3, 4), torch.rand(3, 4, generator=g2))


def test_device_process_on_cpu_is_the_base_process():
    """The mini twin's (CPU) process object gives exactly the base class's matrices."""
    from di4c.processes.gaussian_rate import GaussianRateProcess

    base = GaussianRateProcess(S=S, rate_sigma=PROC.rate_sigma)
    dev = PROC.build("cpu")
    t, s = torch.tensor([0.9, 0.3, 0.02]), torch.tensor([0.5, 0.3, 0.01])
    assert torch.equal(dev.transition(t), base.transition(t))
    assert torch.equal(dev.transition(t, s), base.transition(t, s))
    assert torch.equal(dev.prior_probs(), base.prior_probs())


@pytest.mark.gpu
def test_device_process_and_sampler_on_cuda(teacher_file):
    """On a GPU: transitions computed there match the CPU's; the sampler runs there."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    cpu, gpu = PROC.build("cpu"), PROC.build("cuda")
    t = torch.rand(64)
    s = t * 0.5
    pairs = [(cpu.transition(t), gpu.transition(t.cuda()))]
    pairs.append((cpu.transition(t, s), gpu.transition(t.cuda(), s.cuda())))
    for a, b in pairs:
        assert b.is_cuda and torch.allclose(a, b.cpu(), atol=1e-6)
    path, _ = teacher_file
    teacher, cfg, proc = load_denoiser(path, "teacher", "cuda")
    seeds = sample_seeds(4, seed=0)
    x, nfe, _ = generate(
        proc.build("cuda"), None, teacher, 3, 3, seeds, SHAPE, 4, "cuda"
    )
    assert nfe == 3 and x.shape == (4, *SHAPE) and int(x.max()) < S
