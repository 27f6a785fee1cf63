"""The one checkpoint reader: error classes on real bad files, inert Lightning
bookkeeping, and code-execution payloads refused before anything runs."""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import pytest
import torch

from di4c.checkpoints import (
    CheckpointError,
    CheckpointFormatError,
    InertObject,
    MissingCheckpointError,
    UnsafeCheckpointError,
    load_container,
)

SD = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.ones(3)}


def _global(module: str, name: str) -> bytes:
    """A protocol-2 GLOBAL opcode for ``module.name`` (no import needed)."""
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _torch_file_with_pickle(path: Path, data_pkl: bytes) -> Path:
    """A torch zip container whose ``data.pkl`` is ``data_pkl``.

    The tensors of :data:`SD` are saved by torch first, so their storages are
    real records of the archive; ``data_pkl`` is then swapped in.
    """
    torch.save({"state_dict": SD}, path)
    with zipfile.ZipFile(path) as zf:
        records = {n: zf.read(n) for n in zf.namelist()}
    name = next(n for n in records if n.endswith("/data.pkl"))
    records[name] = data_pkl
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for n, data in records.items():
            zf.writestr(n, data)
    return path


def _lightning_like_pickle(path: Path) -> Path:
    """A Lightning-style checkpoint whose pickle names classes of packages that
    are not installed here (OmegaConf, pytorch_lightning), forged opcode by opcode:
    ``{"state_dict": <the real tensors>, "hyper_parameters": DictConfig(...),
    "callbacks": {ModelCheckpoint: {...}}, "hparams_path": PosixPath(...)}``."""
    torch.save({"state_dict": SD}, path)
    with zipfile.ZipFile(path) as zf:
        original = zf.read(next(n for n in zf.namelist() if n.endswith("data.pkl")))
    # the original pickle is PROTO 2, EMPTY_DICT, ... , STOP: keep its body (the
    # state_dict entry, with the persistent-id storages) and add entries
    assert original[:2] == b"\x80\x02" and original[-1:] == b"."
    extra = b"".join(
        [
            b"X" + len(b"hyper_parameters").to_bytes(4, "little") + b"hyper_parameters",
            _global("omegaconf.dictconfig", "DictConfig"),
            b")\x81",  # EMPTY_TUPLE, NEWOBJ: DictConfig.__new__(DictConfig)
            b"}X\x02\x00\x00\x00lrG?\x1a\x36\xe2\xeb\x1c\x43\x2ds",  # {"lr": 1e-4}
            b"b",  # BUILD
            b"X\x09\x00\x00\x00callbacks}",
            _global("pytorch_lightning.callbacks.model_checkpoint", "ModelCheckpoint"),
            b"}X\x0a\x00\x00\x00best_scoreG?\xe0\x00\x00\x00\x00\x00\x00s",
            b"s",  # callbacks[ModelCheckpoint] = {...}
            b"X\x0c\x00\x00\x00hparams_path",
            _global("pathlib", "PosixPath"),
            b"X\x04\x00\x00\x00/tmp\x85R",  # TUPLE1, REDUCE
            b"u",  # SETITEMS up to the mark below
        ]
    )
    body = original[2:-1]
    # the outer dict ends with SETITEM(S); append ours as one more SETITEMS
    data = b"\x80\x02" + body + b"(" + extra + b"."
    return _torch_file_with_pickle(path, data)


class _Payload:
    """Pickles as ``func(arg)``: calling it would run code on load."""

    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return self.func, (self.arg,)


# ----------------------------------------------------------------------------------
# Each error class on a real bad file
# ----------------------------------------------------------------------------------


def test_good_file_loads_weights_only(tmp_path):
    torch.save(
        {"model": SD, "n_iter": 3, "opt": {"betas": (0.9, 0.99)}}, tmp_path / "a.pt"
    )
    obj = load_container(tmp_path / "a.pt", "test checkpoint")
    assert obj["n_iter"] == 3 and torch.equal(obj["model"]["w"], SD["w"])


def test_missing_empty_truncated_and_foreign_files(tmp_path):
    with pytest.raises(
        MissingCheckpointError, match="test checkpoint not found.*nope.pt"
    ) as e:
        load_container(tmp_path / "nope.pt", "test checkpoint")
    assert isinstance(e.value, FileNotFoundError) and isinstance(
        e.value, CheckpointError
    )

    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(
        CheckpointFormatError, match=r"empty\.pt: test checkpoint is empty"
    ):
        load_container(tmp_path / "empty.pt", "test checkpoint")

    torch.save(SD, tmp_path / "good.pt")
    data = (tmp_path / "good.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(
        CheckpointFormatError, match=r"cut\.pt: .*truncated or corrupt zip"
    ):
        load_container(tmp_path / "cut.pt", "test checkpoint")

    (tmp_path / "noise.pt").write_bytes(bytes(range(7, 250)) * 4)
    with pytest.raises(
        CheckpointFormatError, match=r"noise\.pt: .*not a torch checkpoint"
    ):
        load_container(tmp_path / "noise.pt", "test checkpoint")

    (tmp_path / "text.pt").write_text("model:\n  lr: 1\n")
    with pytest.raises(
        CheckpointFormatError, match=r"text\.pt: .*not a torch checkpoint"
    ):
        load_container(tmp_path / "text.pt", "test checkpoint")

    with pytest.raises(CheckpointFormatError, match="not a file"):
        load_container(tmp_path, "test checkpoint")


def test_messages_are_one_line(tmp_path):
    torch.save(SD, tmp_path / "good.pt")
    data = (tmp_path / "good.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[:300])
    with pytest.raises(CheckpointError) as e:
        load_container(tmp_path / "cut.pt", "test checkpoint")
    assert "\n" not in str(e.value)


# ----------------------------------------------------------------------------------
# Lightning bookkeeping of uninstalled packages
# ----------------------------------------------------------------------------------


def test_lightning_like_file_loads_with_inert_objects(tmp_path):
    path = _lightning_like_pickle(tmp_path / "last.ckpt")
    obj = load_container(path, "Lightning checkpoint", allow_objects=True)
    assert set(obj["state_dict"]) == set(SD)
    assert all(torch.equal(obj["state_dict"][k], v) for k, v in SD.items())
    hp = obj["hyper_parameters"]
    assert isinstance(hp, InertObject)
    assert hp.global_name == "omegaconf.dictconfig.DictConfig"
    assert hp.state == {"lr": 1e-4}
    ((cls, state),) = obj["callbacks"].items()
    assert (
        cls.global_name
        == "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint"
    )
    assert state == {"best_score": 0.5}
    assert obj["hparams_path"].args == ("/tmp",)
    assert not callable(hp)


def test_objects_are_refused_without_allow_objects(tmp_path):
    path = _lightning_like_pickle(tmp_path / "last.ckpt")
    with pytest.raises(
        CheckpointFormatError, match=r"last\.ckpt: .*pickled Python objects"
    ) as e:
        load_container(path, "training checkpoint")
    assert "omegaconf.dictconfig.DictConfig" in str(e.value)


def test_real_python_objects_of_allowlisted_kinds(tmp_path):
    """Objects pickled by Python itself: numpy scalars, paths, defaultdict."""
    import collections
    import pathlib

    import numpy as np

    obj = {
        "state_dict": SD,
        "score": np.float64(0.25),
        "dir": pathlib.PurePosixPath("/a/b"),
        "counts": collections.defaultdict(list, a=[1, 2]),
        "ordered": collections.OrderedDict(x=1),
    }
    torch.save(obj, tmp_path / "np.ckpt")
    back = load_container(tmp_path / "np.ckpt", "checkpoint", allow_objects=True)
    assert torch.equal(back["state_dict"]["w"], SD["w"])
    assert isinstance(back["score"], InertObject) and isinstance(
        back["dir"], InertObject
    )
    assert back["counts"] == {"a": [1, 2]}  # a plain dict
    assert back["ordered"] == collections.OrderedDict(x=1)


# ----------------------------------------------------------------------------------
# Code-execution payloads: refused, never run
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize("allow_objects", [False, True])
@pytest.mark.parametrize("kind", ["os.system", "builtins.exec", "subprocess"])
def test_payload_is_refused_and_never_runs(tmp_path, kind, allow_objects):
    marker = tmp_path / "pwned"
    if kind == "os.system":
        payload = _Payload(os.system, f"touch {marker}")
    elif kind == "builtins.exec":
        payload = _Payload(exec, f"open({str(marker)!r}, 'w').close()")
    else:
        import subprocess

        payload = _Payload(subprocess.call, ["touch", str(marker)])
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": SD, "hyper_parameters": payload}, path)
    with pytest.raises(UnsafeCheckpointError, match=r"evil\.ckpt: refused") as e:
        load_container(path, "checkpoint", allow_objects=allow_objects)
    assert not marker.exists()
    name = {"os.system": "system", "builtins.exec": "builtins.exec"}.get(
        kind, "subprocess"
    )
    assert name in str(e.value) and "nothing from the file was run" in str(e.value)
    assert "\n" not in str(e.value)


def test_forged_payload_via_an_allowlisted_package_stays_inert(tmp_path):
    """``pathlib.Path.touch`` through an allowlisted package is only a placeholder."""
    marker = tmp_path / "pwned"
    data = b"".join(
        [
            b"\x80\x02}X\x01\x00\x00\x00x",
            _global("pathlib", "Path"),
            b"X" + len(str(marker)).to_bytes(4, "little") + str(marker).encode(),
            b"\x85R",  # Path(str(marker))
            b"s.",
        ]
    )
    path = _torch_file_with_pickle(tmp_path / "p.ckpt", data)
    obj = load_container(path, "checkpoint", allow_objects=True)
    assert isinstance(obj["x"], InertObject)
    assert not hasattr(obj["x"], "touch") and not marker.exists()


def test_build_on_a_class_and_extension_codes_are_refused(tmp_path):
    """BUILD on a class object (monkey-patching it) and copyreg EXT codes."""
    build_class = (
        b"\x80\x02"
        + _global("collections", "OrderedDict")
        + b"}X\x01\x00\x00\x00aK\x01sb."
    )
    path = _torch_file_with_pickle(tmp_path / "b.ckpt", build_class)
    with pytest.raises(UnsafeCheckpointError, match="BUILD"):
        load_container(path, "checkpoint", allow_objects=True)
    ext = _torch_file_with_pickle(tmp_path / "e.ckpt", b"\x80\x02\x82\x01.")
    with pytest.raises(UnsafeCheckpointError, match="extension"):
        load_container(ext, "checkpoint", allow_objects=True)


def test_a_plain_pickle_file_is_read_the_same_way(tmp_path):
    """A legacy (non-zip) file: same rules."""
    marker = tmp_path / "pwned"
    with open(tmp_path / "old.pt", "wb") as f:
        pickle.dump(_Payload(os.system, f"touch {marker}"), f, protocol=2)
    with pytest.raises(UnsafeCheckpointError):
        load_container(tmp_path / "old.pt", "checkpoint", allow_objects=True)
    assert not marker.exists()
