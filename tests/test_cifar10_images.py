"""CIFAR-10 slice: packaged digit loaders, the digit classifier and image metrics."""

import pytest
import torch

from di4c.data.images import (
    ImageDataConfig,
    levels_to_uint8,
    load_image_splits,
    load_raw,
    load_splits,
    quantize,
    save_splits,
    stratified_split,
)
from di4c.metrics.image_quality import (
    InsufficientSamplesError,
    extract_features,
    image_metrics,
    metrics_from_features,
    split_half_spread,
)
from di4c.networks.digit_classifier import (
    DigitClassifierConfig,
    accuracy,
    load_digit_classifier,
    save_digit_classifier,
    train_digit_classifier,
)


@pytest.fixture(scope="module")
def digits():
    return load_image_splits(ImageDataConfig("digits", size=8, levels=17, heldout=300))


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory, digits):
    """A small classifier trained for 2 epochs: informative features, seconds to train."""
    model, report = train_digit_classifier(
        digits.uint8("heldout"),
        digits.heldout_y,
        config=DigitClassifierConfig(
            image_size=8, width=8, feature_dim=16, dropout=0.0
        ),
        epochs=5,
        lr=1e-2,
        batch_size=32,
        shift=0,
        seed=0,
        eval_images=digits.uint8("train"),
        eval_labels=digits.train_y,
        log_every=0,
    )
    path = tmp_path_factory.mktemp("clf") / "clf.pt"
    save_digit_classifier(model, path, report)
    return path, model, report


def test_raw_sources_are_the_packaged_sets():
    x, y = load_raw("digits")
    assert x.shape == (1797, 1, 8, 8) and x.min() == 0 and x.max() == 1
    # sklearn digits hold 17 grey levels 0..16: quantising at 17 levels is exact
    assert torch.equal(quantize(x, 17).float() / 16, x)
    x, y = load_raw("mnist5k")
    assert x.shape == (5000, 1, 28, 28)
    assert torch.bincount(y).tolist() == [500] * 10


def test_quantise_round_trip_and_levels():
    pix = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    assert torch.equal(levels_to_uint8(quantize(pix.float() / 255, 256), 256), pix)
    v = quantize(torch.tensor([0.0, 0.49, 0.51, 1.0]), 3)
    assert v.tolist() == [0, 1, 1, 2]
    assert levels_to_uint8(torch.tensor([0, 1, 2]), 3).tolist() == [0, 128, 255]
    with pytest.raises(ValueError, match="levels must lie"):
        levels_to_uint8(torch.tensor([3]), 3)
    with pytest.raises(ValueError, match="unknown image source"):
        ImageDataConfig(source="cifar100")


def test_split_is_stratified_disjoint_and_deterministic(digits, tmp_path):
    y = load_raw("digits")[1]
    tr, ho = stratified_split(y, 300, seed=0)
    assert torch.bincount(y[ho]).tolist() == [30] * 10
    assert len(set(tr.tolist()) & set(ho.tolist())) == 0 and len(tr) + len(ho) == 1797
    tr2, ho2 = stratified_split(y, 300, seed=0)
    assert torch.equal(ho, ho2)
    assert not torch.equal(ho, stratified_split(y, 300, seed=1)[1])
    assert digits.train_x.shape == (1497, 1, 8, 8) and digits.flat().shape == (1497, 64)
    save_splits(digits, tmp_path / "d.pt")
    back = load_splits(tmp_path / "d.pt")
    assert torch.equal(back.train_x, digits.train_x) and back.config == digits.config
    with pytest.raises(FileNotFoundError, match="rule prepare_data"):
        load_splits(tmp_path / "missing.pt")


def test_classifier_learns_is_deterministic_and_round_trips(tiny_classifier, digits):
    path, model, report = tiny_classifier
    assert report["eval_accuracy"] > 0.4  # 10 classes: chance is 0.1
    again, _ = train_digit_classifier(
        digits.uint8("heldout")[:64],
        digits.heldout_y[:64],
        config=DigitClassifierConfig(image_size=8, width=4, feature_dim=8),
        epochs=1,
        seed=3,
        log_every=0,
    )
    twin, _ = train_digit_classifier(
        digits.uint8("heldout")[:64],
        digits.heldout_y[:64],
        config=DigitClassifierConfig(image_size=8, width=4, feature_dim=8),
        epochs=1,
        seed=3,
        log_every=0,
    )
    for a, b in zip(again.state_dict().values(), twin.state_dict().values()):
        assert torch.equal(a, b)
    loaded = load_digit_classifier(path)
    x = digits.uint8("train")[:50]
    assert torch.equal(loaded.features(x)["pool"], model.features(x)["pool"])
    assert accuracy(loaded, x, digits.train_y[:50]) == accuracy(
        model, x, digits.train_y[:50]
    )
    rgb = x.expand(-1, 3, -1, -1)
    assert torch.allclose(loaded(rgb), loaded(x))  # RGB input is averaged to grey
    with pytest.raises(ValueError, match="uint8"):
        loaded(x.float())
    with pytest.raises(ValueError, match="trained on 8x8"):
        loaded(torch.zeros(1, 1, 16, 16, dtype=torch.uint8))


def test_image_metrics_through_torch_fidelity(tiny_classifier, digits):
    path = tiny_classifier[0]
    real = digits.uint8("train")[:600]
    same = digits.uint8("train")[600:1200]
    blank = torch.zeros(300, 1, 8, 8, dtype=torch.uint8)
    ms = ("fid", "isc", "kid", "prc")
    good = image_metrics(same, real, "digit-classifier", ms, weights_path=path)
    bad = image_metrics(blank, real, "digit-classifier", ms, weights_path=path)
    assert good["fid"] < bad["fid"] and good["kid"] < bad["kid"]
    assert 1.0 <= bad["is"] < good["is"] <= 10.0  # one repeated image: IS = 1
    assert bad["is"] == pytest.approx(1.0, abs=1e-6)
    assert good["recall"] > bad["recall"]
    self_fid = image_metrics(
        real, real, "digit-classifier", ("fid",), weights_path=path
    )
    assert abs(self_fid["fid"]) < 1e-6
    # the feature route gives exactly the calculate_metrics numbers
    ff = extract_features(same, "digit-classifier", ms, weights_path=path)
    fr = extract_features(real, "digit-classifier", ms, weights_path=path)
    alt = metrics_from_features(ff, fr, "digit-classifier", ms)
    for k in ("fid", "is", "kid", "precision", "recall"):
        assert alt[k] == pytest.approx(good[k], rel=1e-9, abs=1e-12)
    spread = split_half_spread(ff, fr, "digit-classifier", ("fid", "isc"))
    assert spread["fid"] >= 0 and spread["is"] >= 0


def test_image_metrics_refusals(tiny_classifier, digits):
    path = tiny_classifier[0]
    x = digits.uint8("train")[:20]
    with pytest.raises(InsufficientSamplesError, match="needs >= 50000"):
        image_metrics(
            x, x, "digit-classifier", ("fid",), weights_path=path, protocol="paper"
        )
    with pytest.raises(ValueError, match="cannot compute \\['isc'\\]"):
        image_metrics(x, x, "inception-v3-fidhelper", ("isc",))
    with pytest.raises(ValueError, match="needs weights_path"):
        image_metrics(x, x, "digit-classifier", ("fid",))
    with pytest.raises(ValueError, match="unknown feature_extractor"):
        image_metrics(x, x, "vgg", ("fid",))
    with pytest.raises(ValueError, match="uint8 tensor"):
        image_metrics(x.float(), x, "digit-classifier", ("fid",), weights_path=path)


def test_offline_inception_matches_the_torchscript_and_feeds_clean_fid(digits):
    """The fid-helper Inception through torch-fidelity = TF-1.x resize + (x-128)/128 + the net."""
    from torch_fidelity.interpolate_compat_tensorflow import (
        interpolate_bilinear_2d_like_tensorflow1x,
    )

    from di4c.metrics.image_quality import clean_fid_features, fidhelper_inception

    x = digits.uint8("train")[:2]
    feats = extract_features(x, "inception-v3-fidhelper", ("fid",))["2048"]
    rgb = x.expand(-1, 3, -1, -1).float()
    ref = fidhelper_inception()(
        (
            interpolate_bilinear_2d_like_tensorflow1x(
                rgb, size=(299, 299), align_corners=False
            )
            - 128
        )
        / 128
    )
    assert feats.shape == (2, 2048)
    assert torch.allclose(feats.float(), ref, atol=1e-5)
    cf = clean_fid_features(x, feature_extractor="fidhelper")
    assert cf.shape == (2, 2048) and torch.isfinite(torch.as_tensor(cf)).all()
    # clean-fid resizes with PIL bicubic, torch-fidelity with TF bilinear: close, not equal
    assert not torch.allclose(torch.as_tensor(cf).float(), ref, atol=1e-3)
