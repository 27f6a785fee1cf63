"""pytorch-gan-metrics FID / IS (the paper's Table 1 tool; di4c/metrics/gan_metrics.py):
the fid-helper weights in pytorch-fid's layout, the offline errors, the statistics
files, and (slow: full-size Inception passes on the CPU) the same numbers as the
package's own public functions and the CIFAR-10 setting's columns."""

from __future__ import annotations

import urllib.error

import numpy as np
import pytest
import torch

from di4c.config import DEFAULT_CONFIG, ConfigError, load_config, resolve
from di4c.download import MissingWeightsError
from di4c.metrics import gan_metrics as gm
from di4c.metrics.image_quality import InsufficientSamplesError
from di4c.settings import get_setting

C10 = get_setting("cifar10")


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """fid-helper's Inception-v3 converted into pytorch-fid's layout (no logits)."""
    return gm.convert_fidhelper_weights(tmp_path_factory.mktemp("w") / "conv.pth")


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    """The converted network plus a seeded random logits layer."""
    return gm.standin_pgm_weights(tmp_path_factory.mktemp("w") / "standin.pth", seed=3)


def _pgm_net(weights, blocks):
    import pytorch_gan_metrics.inception as inception

    state, _ = gm.load_pgm_weights(weights)
    with gm._pgm_loads(state, weights):
        return inception.InceptionV3(blocks).eval()


def _images(n, seed, size=32):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)


# ------------------------------------------------------------------------- weights
def test_weights_file_is_the_one_the_package_downloads():
    import pytorch_gan_metrics.inception as inception

    assert gm.PGM_WEIGHTS.url == inception.FID_WEIGHTS_URL
    assert gm.PGM_WEIGHTS.name == inception.FID_WEIGHTS_URL.rsplit("/", 1)[1]
    assert gm.PGM_SHA256_PREFIX in gm.PGM_WEIGHTS.name


def test_converted_weights_fill_the_packages_network(converted):
    """Every tensor of pytorch-fid's Inception-v3 but the logits layer (BN scale 1),
    loaded strictly by the package's own ``fid_inception_v3``."""
    import pytorch_gan_metrics.inception as inception

    state = torch.load(converted, weights_only=True)
    full, _ = gm.load_pgm_weights(converted)
    with gm._pgm_loads(full, converted):
        net = inception.fid_inception_v3()
    loaded = net.state_dict()
    assert set(state) == set(loaded) - {"fc.weight", "fc.bias"}
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    scales = [v for k, v in state.items() if k.endswith("bn.weight")]
    assert len(scales) == 94 and all(bool((v == 1).all()) for v in scales)


def test_converted_weights_give_the_fidhelper_features(converted):
    """The package's network with the converted weights computes what fid-helper's
    TorchScript computes (pool features, before the final average; small inputs)."""
    from di4c.metrics.image_quality import fidhelper_inception

    net = _pgm_net(converted, [3])
    layers = fidhelper_inception().net.layers
    x = torch.rand(2, 3, 96, 96, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        ours = x
        for block in net.blocks:
            ours = block(ours)
        theirs = x
        for name, module in layers.named_children():
            if name != "pool2":  # an 8 x 8 pool: the 299 x 299 input's final map
                theirs = module(theirs)
    ours, theirs = ours.flatten(1), theirs.mean((2, 3))
    assert ours.shape == theirs.shape == (2, 2048)
    assert (ours - theirs).abs().max() < 1e-4 * theirs.abs().max()
    assert theirs.abs().max() > 0.1  # features, not zeros


def test_weights_without_logits_refuse_is(converted):
    state, has_logits = gm.load_pgm_weights(converted)
    assert not has_logits and torch.isnan(state["fc.weight"]).all()
    with pytest.raises(ConfigError, match="pgm_weights_path.*no logits layer"):
        gm.pgm_features(_images(2, 0), converted, logits=True)


def test_weights_of_another_network_are_one_line(tmp_path):
    from di4c.checkpoints import CheckpointFormatError

    bad = tmp_path / "bad.pth"
    torch.save({"conv.weight": torch.zeros(2)}, bad)
    with pytest.raises(CheckpointFormatError, match="not pytorch-fid's Inception-v3"):
        _pgm_net(bad, [3])


def test_offline_weights_name_the_config_key(tmp_path, monkeypatch):
    import di4c.download as download

    def offline(url, dest, timeout=60.0):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(download, "_http_download", offline)
    monkeypatch.setenv("DI4C_CACHE_DIR", str(tmp_path))
    with pytest.raises(MissingWeightsError) as e:
        gm.pgm_weights_file(None)
    msg = str(e.value)
    assert "'cifar10.paper.metrics.pgm_weights_path'" in msg and "\n" not in msg
    assert gm.PGM_WEIGHTS.url in msg and "di4c.cli.pgm convert-weights" in msg
    with pytest.raises(MissingWeightsError, match="pgm_weights_path.*does not exist"):
        gm.pgm_weights_file(tmp_path / "missing.pth")


# ---------------------------------------------------------------------- statistics
def test_statistics_file_round_trip_and_errors(tmp_path):
    pool = np.random.default_rng(0).normal(size=(50, 4))
    mu, sigma = gm.pgm_statistics(pool)
    assert np.allclose(mu, pool.mean(0)) and np.allclose(sigma, np.cov(pool.T))
    path = gm.save_pgm_stats(tmp_path / "cifar10.train.npz", mu, sigma)
    got = gm.load_pgm_stats(path)
    assert np.array_equal(got[0], mu) and np.array_equal(got[1], sigma)
    key = "cifar10.paper.metrics.pgm_stats_path"
    with pytest.raises(MissingWeightsError, match=f"not found; set config key '{key}'"):
        gm.load_pgm_stats(tmp_path / "none.npz")
    np.savez(tmp_path / "bad.npz", mu=mu, sigma=sigma[:2])
    with pytest.raises(MissingWeightsError, match="do not fit"):
        gm.load_pgm_stats(tmp_path / "bad.npz")
    np.savez(tmp_path / "nomu.npz", sigma=sigma)
    with pytest.raises(MissingWeightsError, match="not an FID statistics"):
        gm.load_pgm_stats(tmp_path / "nomu.npz")


def test_fid_and_is_are_the_packages_formulas():
    """FID of identical statistics is 0; IS of uniform / one-hot probabilities is
    1 / the number of classes used (the package's functions, here on toy inputs)."""
    pool = np.random.default_rng(1).normal(size=(200, 3))
    mu, sigma = gm.pgm_statistics(pool)
    assert gm.pgm_fid(pool, mu, sigma) == pytest.approx(0.0, abs=1e-8)
    assert gm.pgm_fid(pool + 2.0, mu, sigma) == pytest.approx(12.0, rel=1e-6)
    uniform = np.full((100, 8), 1 / 8)
    assert gm.pgm_inception_score(uniform) == pytest.approx((1.0, 0.0))
    onehot = np.eye(4)[np.arange(120) % 4] * (1 - 4e-9) + 1e-9  # 10 splits of 12
    assert gm.pgm_inception_score(onehot)[0] == pytest.approx(4.0, rel=1e-6)


# -------------------------------------------------------------------------- config
def test_pgm_columns_are_on_at_paper_scale_only():
    config = load_config(DEFAULT_CONFIG)
    paper = resolve(config, "cifar10", "paper")["metrics"]
    assert paper["pgm"] is True and paper["pgm_weights_path"] is None
    assert paper["pgm_stats_path"] is None  # computed from CIFAR-10 train
    for scale in ("mini", "smoke"):
        assert resolve(config, "cifar10", scale)["metrics"]["pgm"] is False
    bad = {"cifar10": {"paper": {"metrics": {"pgm": "yes"}}}}
    from di4c.config import deep_merge

    with pytest.raises(ConfigError, match="metrics.pgm"):
        resolve(deep_merge(config, bad), "cifar10", "paper")


def test_score_without_reference_statistics_is_one_line():
    cfg = resolve(load_config(DEFAULT_CONFIG), "cifar10", "paper")
    with pytest.raises(ConfigError, match="rerun the reference step"):
        C10._pgm_score(cfg, _images(2, 0), [None, None], "cpu")


def test_missing_statistics_file_names_the_key(tmp_path):
    cfg = resolve(load_config(DEFAULT_CONFIG), "cifar10", "paper")
    cfg["metrics"]["pgm_stats_path"] = str(tmp_path / "cifar10.train.npz")
    with pytest.raises(
        MissingWeightsError, match="'cifar10.paper.metrics.pgm_stats_path'"
    ):
        C10._pgm_reference(cfg, _images(2, 0), "cpu")


# ------------------------------------------------- slow: full-size Inception passes
@pytest.mark.slow  # four Inception-v3 passes at 299 x 299 on the CPU
def test_same_numbers_as_the_packages_own_functions(standin, tmp_path):
    """fid_pgm / is_pgm of uint8 images equal ``get_inception_score_and_fid`` on the
    same images as float [0, 1] (its weights from the torch hub cache, the package
    untouched); the statistics equal those of the images as PNGs read by its
    ``ImageDataset`` (``calc_and_save_stats``'s route; that function itself has no
    device argument and wants CUDA)."""
    import pytorch_gan_metrics as pgm
    from PIL import Image
    from pytorch_gan_metrics.core import get_inception_feature
    from torch.utils.data import DataLoader

    fake, real = _images(20, 1), _images(6, 2)  # IS: 10 splits of two images
    mu, sigma = gm.compute_pgm_stats(real, tmp_path / "ours.npz", standin)
    sigma = sigma + 0.1 * np.eye(len(mu))  # a well-conditioned reference for sqrtm
    stats = gm.save_pgm_stats(tmp_path / "ref.npz", mu, sigma)
    ours = gm.pgm_record(fake, mu, sigma, standin, bootstrap=0)

    hub = tmp_path / "hub"
    (hub / "checkpoints").mkdir(parents=True)
    (hub / "checkpoints" / gm.PGM_WEIGHTS.name).symlink_to(standin)
    saved = torch.hub.get_dir()
    torch.hub.set_dir(str(hub))
    try:
        (is_mean, is_std), fid = pgm.get_inception_score_and_fid(
            fake.float() / 255, str(stats), device=torch.device("cpu")
        )
        png = tmp_path / "png"
        png.mkdir()
        for i, x in enumerate(real.permute(0, 2, 3, 1).numpy()):
            Image.fromarray(x).save(png / f"{i}.png")
        (acts,) = get_inception_feature(
            DataLoader(pgm.ImageDataset(str(png)), batch_size=50),
            dims=[2048],
            device=torch.device("cpu"),
        )
    finally:
        torch.hub.set_dir(saved)
    assert ours["fid_pgm"] == pytest.approx(fid, rel=1e-6)
    assert ours["is_pgm"] == pytest.approx(is_mean, rel=1e-6) and is_mean > 1 + 1e-6
    assert ours["is_pgm_split_std"] == pytest.approx(is_std, rel=1e-6, abs=1e-9)
    assert ours["pgm_weights"].startswith("other sha256:")  # not the published file
    a, b = gm.load_pgm_stats(tmp_path / "ours.npz"), (acts.mean(0), np.cov(acts.T))
    assert np.allclose(a[0], b[0], atol=1e-6) and np.allclose(a[1], b[1], atol=1e-6)


@pytest.mark.slow  # Inception-v3 passes and bootstrap sqrtms on the CPU
def test_setting_reference_and_score_give_the_pgm_columns(standin, tmp_path):
    """The reference step computes the statistics (pgm_stats_path null) or reads them;
    the score step adds fid_pgm / is_pgm with bootstrap sd, beside torch-fidelity."""
    from di4c.config import deep_merge

    cfg = resolve(load_config(DEFAULT_CONFIG), "cifar10", "smoke")
    cfg = deep_merge(
        cfg,
        {"metrics": {"pgm": True, "pgm_weights_path": str(standin), "bootstrap": 2}},
    )
    data = tmp_path / "data"
    data.mkdir()
    C10.prepare_data(deep_merge(cfg, {"data": {"heldout": 10}}), data)
    real = C10._pgm_reference(cfg, C10.real_images(cfg, data, "train")[:8], "cpu")
    mu, sigma = (real[k].numpy() for k in gm.PGM_STATS_KEYS)
    assert mu.shape == (2048,) and sigma.shape == (2048, 2048)
    sigma = sigma + 0.1 * np.eye(2048)
    fake = C10.real_images(cfg, data, "heldout")[:10]  # IS: 10 splits
    record = C10._pgm_score(
        cfg, fake, [torch.from_numpy(mu), torch.from_numpy(sigma)], "cpu"
    )
    assert set(record) >= {
        "fid_pgm",
        "fid_pgm_sd",
        "is_pgm",
        "is_pgm_sd",
        "pgm_weights",
    }
    assert record["fid_pgm"] > 0 and record["is_pgm"] >= 1 - 1e-9
    assert record["fid_pgm_sd"] > 0
    want = gm.pgm_record(fake, mu, sigma, standin, bootstrap=2)
    assert record == want
    with pytest.raises(InsufficientSamplesError, match="10 splits"):
        gm.pgm_record(fake[:9], mu, sigma, standin)
