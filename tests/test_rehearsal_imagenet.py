"""ImageNet rehearsal: the stand-ins (di4c.standins.imagenet) read by the paper code.

One build at the rehearsal layer's options (module fixture, two builds for byte
identity, ~1 min) checked through the project's own readers: the fetch step, the
MaskGIT / VQGAN loaders against the authors' manifests (minus the listed reductions),
torchvision's ImageFolder and torch-fidelity's Inception. Slow: the ImageNet
rehearsal DAG end to end.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from conftest import copy_workflow, snakemake

from di4c.cli.standins import manifest
from di4c.config import load_config, resolve
from di4c.networks.maskgit import PAPER_TEACHER_CONFIG, MaskTransformer
from di4c.networks.vqgan import PAPER_VQGAN_CONFIG, VQGANConfig
from di4c.standins import imagenet as standins
from di4c.teachers import maskgit as mg

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "tests/fixtures/manifests"
CONFIGS = [
    ROOT / "workflows/config/default.yaml",
    ROOT / "workflows/config/rehearsal.yaml",
]


def rehearsal_cfg(results_dir: Path) -> dict:
    config = load_config(CONFIGS)
    config["results_dir"] = str(results_dir)
    return resolve(config, "imagenet", "rehearsal")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Two builds with one seed: ``(cfg, out, files, second build's files)``."""
    runs = []
    for name in ("a", "b"):
        results = tmp_path_factory.mktemp(name)
        cfg = rehearsal_cfg(results)
        out = results / "imagenet/rehearsal/standins"
        runs.append((cfg, out, standins.build(cfg, out, cfg["standins"]["seed"])))
    return (*runs[0], runs[1])


def _manifest(name: str) -> dict:
    path = MANIFESTS / name
    if not path.is_file():
        pytest.skip(f"reference manifest not available: {path}")
    return json.loads(path.read_text())


def test_files_where_the_local_copy_keys_point_byte_identical(built):
    cfg, out, files, (_, out_b, files_b) = built
    m = cfg["models"]
    for path in (m["teacher"]["local"], m["released"]["local"],
                 m["vq"]["local_ckpt"], m["vq"]["local_yaml"],
                 cfg["metrics"]["weights_path"]):  # fmt: skip
        assert Path(path).is_file() and Path(path) in files, path
    assert len(files) == 5 + 2 * 1000  # one JPEG per class and split
    assert manifest(files, out) == manifest(files_b, out_b)


def test_fetch_step_reads_the_reduced_networks_off_the_files(built, monkeypatch):
    """The paper fetch step on the stand-ins: kinds, and the network each card records
    is the paper's with exactly the listed reductions."""
    from di4c.cli import fetch as fetch_step
    from di4c.models import read_card

    cfg, out, _, _ = built
    monkeypatch.setenv("DI4C_CACHE_DIR", str(out / "no-cache"))
    results = out.parents[2]
    cards = {}
    for model in ("teacher", "released", "vq"):
        folder = results / "fetched" / model
        fetch_step.cli(["--setting", "imagenet", "--scale", "rehearsal", "--model", model,
                        "--config", json.dumps(cfg), "--out-dir", str(folder)])  # fmt: skip
        cards[model] = read_card(folder)
    assert [c.kind for c in cards.values()] == ["product", "mixture", "tokenizer"]
    want = dataclasses.replace(PAPER_TEACHER_CONFIG, **cfg["standins"]["maskgit"])
    assert cards["teacher"].network == want.to_dict()
    assert cards["released"].network == want.as_student().to_dict()
    assert not (out / "no-cache").exists()  # local copies used in place


@pytest.mark.parametrize(
    "role, manifest_name",
    [
        ("teacher", "maskgit_imagenet256_teacher.json"),
        ("released", "maskgit_imagenet256_di4c_student.json"),
    ],
)
def test_transformer_files_match_the_authors_layout(built, role, manifest_name):
    """Keys in the authors' order and shapes, minus the listed reductions (layers
    beyond the kept depth; 768 -> hidden, 2304 -> 3 hidden, 3072 -> MLP)."""
    cfg, _, _, _ = built
    red = cfg["standins"]["maskgit"]
    ckpt = mg.read_transformer_checkpoint(cfg["models"][role]["local"])
    assert set(ckpt.optimizer_state_dict) == {"state", "param_groups"}
    assert isinstance(ckpt.iter, int) and isinstance(ckpt.global_epoch, int)
    ref = _manifest(manifest_name)["parameters"]
    h = red["hidden_dim"]
    dims = {768: h, 2304: 3 * h, 3072: red["mlp_dim"]}
    keep = [k for k in ref if not k.startswith("transformer.layers.")
            or int(k.split(".")[2]) < red["depth"]]  # fmt: skip
    assert list(ckpt.state_dict) == keep
    for k in keep:
        want = tuple(dims.get(d, d) for d in ref[k])
        assert tuple(ckpt.state_dict[k].shape) == want, k
    # the teacher's tensors are the student's start (the authors' initialisation)
    if role == "released":
        teacher = mg.read_transformer_checkpoint(cfg["models"]["teacher"]["local"])
        for k, v in teacher.state_dict.items():
            assert torch.equal(ckpt.state_dict[k], v), k


def test_vqgan_files_load_and_decode(built):
    """model.yaml is the authors' config with the listed reductions; last.ckpt holds
    every VQModel key (plus ignored loss.* entries) and decodes a 16 x 16 grid."""
    cfg, _, _, _ = built
    vq_files = cfg["models"]["vq"]
    params = mg.read_vqgan_yaml(vq_files["local_yaml"])
    got = VQGANConfig.from_params(params)
    paper = VQGANConfig.from_params(_manifest("maskgit_vqgan_f16_1024.json")["config"])
    assert paper == PAPER_VQGAN_CONFIG
    assert got == dataclasses.replace(paper, **cfg["standins"]["vqgan"])
    raw = torch.load(vq_files["local_ckpt"], weights_only=True)
    assert raw["pytorch-lightning_version"] == "1.0.8"
    assert any(k.startswith("loss.") for k in raw["state_dict"])
    vq = mg.vqgan_from_files(vq_files["local_ckpt"], vq_files["local_yaml"])
    codes = torch.randint(
        0, 1024, (1, 16, 16), generator=torch.Generator().manual_seed(0)
    )
    with torch.no_grad():
        img = vq.decode_code(codes)
        assert img.shape == (1, 3, 256, 256) and torch.isfinite(img).all()
        assert vq.encode_grid(img.clamp(-1, 1)).shape == (1, 16, 16)
    teacher = mg.teacher_from_checkpoint(cfg["models"]["teacher"]["local"])
    assert isinstance(teacher, MaskTransformer)
    assert teacher.config.codebook_size == got.n_embed


def test_imagefolder_of_1000_wnids(built):
    from torchvision.datasets import ImageFolder

    from di4c.data.imagenet import imagenet_folder, val_labels_in_loader_order

    cfg, _, _, _ = built
    root = Path(cfg["data"]["root"])
    raw = ImageFolder(root / "val")
    assert raw.classes == standins.wnids() and len(raw) == 1000
    assert all(c[0] == "n" and len(c) == 9 and c[1:].isdigit() for c in raw.classes)
    img, label = imagenet_folder(root, "train")[999]
    assert img.shape == (3, 256, 256) and label == 999
    labels = val_labels_in_loader_order(root, cfg["data"]["label_seed"], 10)
    assert labels.shape == (10,) and len(set(labels.tolist())) == 10


def test_inception_file_is_fidhelpers_pool_in_torch_fidelitys_layout(built):
    """torch-fidelity loads the file (strictly) and its pool features are
    fid-helper's; the logits (IS) layer is present."""
    from di4c.metrics.image_quality import extract_features

    cfg, _, _, _ = built
    x = torch.randint(0, 256, (2, 3, 40, 40), dtype=torch.uint8,
                      generator=torch.Generator().manual_seed(0))  # fmt: skip
    ours = extract_features(x, "inception-v3-compat", ("fid", "isc"),
                            weights_path=cfg["metrics"]["weights_path"])  # fmt: skip
    ref = extract_features(x, "inception-v3-fidhelper", ("fid",))["2048"]
    assert ours["logits_unbiased"].shape == (2, 1008)
    assert torch.allclose(ours["2048"].double(), ref.double(), atol=1e-5)


# ------------------------------------------------------------------ end to end
# three cells (teacher, a distilled student, the released student at N = 4, CFG 0):
# every rule of the ImageNet paper DAG runs once (make_standins, fetch_model x 3,
# prepare_data, encode_images, distill, sample, reference, score, make_paper_table).
# The full 86-job rehearsal (38 cells) took ~25 CPU-minutes in our runs.
FEW_CELLS = """imagenet:
  rehearsal:
    sweep: {cfg_grid: [0], curve_steps: {teacher: [4], student: [4]}, step_grid_cfg: 0,
            teacher_step_grid: [4], student_step_grid: [4], students: [di4c-d, released]}
"""


@pytest.mark.slow  # 17 jobs: 192 s measured (2 cores); far longer on a loaded machine
def test_imagenet_rehearsal_dag_every_rule(tmp_path):
    """The ImageNet paper DAG on the stand-ins, every rule once (snakemake, CPU)."""
    work = copy_workflow(tmp_path / "wf")
    (work / "few.yaml").write_text(FEW_CELLS)
    target = "results/rehearsal_tables/imagenet.csv"
    run = snakemake("--cores", "2", target, "--configfile",
                    "workflows/config/rehearsal.yaml", "few.yaml", cwd=work)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    rows = (work / target).read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["teacher", "di4c-d", "released"]
    run_dir = work / "results/imagenet/rehearsal"
    for job in ("make_standins", "fetch_vq", "encode_images", "distill_di4c-d",
                "reference", "sample_released_n4_w0", "score_di4c-d_n4_w0"):  # fmt: skip
        assert (run_dir / "benchmarks" / f"{job}.tsv").is_file(), job
