"""One safe reader for every checkpoint container, and one error hierarchy.

Every family (tauLDR ``.pt``, MaskGIT ``.pth`` and the VQGAN Lightning
``last.ckpt``, SDTT/Di4C Lightning ``.ckpt``) and the training loop's own
resume checkpoints are read with :func:`load_container`. Checkpoints come from
the internet (Dropbox, Hugging Face, Zenodo), so no file is ever unpickled with
Python's full unpickler:

1. ``torch.load(weights_only=True)`` first (memory-mapped when the file is a
   zip container): tensors, dicts, lists, tuples, numbers, strings, None.
2. A file the weights-only loader refuses is read again with
   :class:`RestrictedUnpickler`. torch's own weights-only globals load as
   themselves; globals of the inert bookkeeping allowlist (:data:`INERT_PACKAGES`,
   :data:`INERT_GLOBALS`: Lightning hyper-parameters, OmegaConf configs,
   callback states, paths, numpy scalars) become :class:`InertObject`
   placeholders, which never import the real class and have no behaviour;
   any other global (``os.system``, ``builtins.exec``, ``subprocess.*``, ...)
   is refused with :class:`UnsafeCheckpointError` before anything runs.
   Only ``allow_objects=True`` returns such a file; without it the reader
   raises :class:`CheckpointFormatError` naming the objects found.

Callers catch :class:`CheckpointError` for "bad checkpoint", whatever the family.
"""

from __future__ import annotations

import _compat_pickle
import functools
import os
import pickle
import types
import zipfile
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "INERT_GLOBALS",
    "INERT_PACKAGES",
    "CheckpointError",
    "CheckpointFormatError",
    "InertObject",
    "MissingCheckpointError",
    "NETWORK_KEY",
    "RestrictedUnpickler",
    "UnsafeCheckpointError",
    "embedded_network",
    "inert_globals",
    "load_container",
    "unconfigured_hint",
    "with_network",
]


class CheckpointError(ValueError):
    """A checkpoint file cannot be used; the message names the file and the problem."""


class CheckpointFormatError(CheckpointError):
    """Unreadable, empty, truncated, of another container kind, or wrong keys."""


class UnsafeCheckpointError(CheckpointError):
    """The pickle needs a global outside the allowlist; it was refused, nothing ran."""


class MissingCheckpointError(CheckpointError, FileNotFoundError):
    """The checkpoint file does not exist."""


# ----------------------------------------------------------------------------------
# The network configuration our own containers carry
# ----------------------------------------------------------------------------------

# The top-level entry (of a torch container; a safetensors metadata key) holding
# the network configuration of a file this project wrote, so that a checkpoint
# copied without its model card still builds the right network. Published files
# have no such entry and are read exactly as published; the authors' loaders read
# their own entries by name and never look at this one.
NETWORK_KEY = "di4c_network"


def with_network(container: dict, network: dict) -> dict:
    """``container`` with the network configuration ``network`` embedded."""
    return {**container, NETWORK_KEY: dict(network)}


def embedded_network(obj: Any, path: str | os.PathLike) -> dict | None:
    """The network configuration a container embeds (None for published files)."""
    net = obj.get(NETWORK_KEY) if isinstance(obj, dict) else None
    if net is None:
        return None
    if not isinstance(net, dict) or not all(isinstance(k, str) for k in net):
        raise CheckpointFormatError(
            f"{path}: its '{NETWORK_KEY}' entry is not a network configuration "
            f"(a dict of names); got {type(net).__name__}"
        )
    return dict(net)


def unconfigured_hint(path: str | os.PathLike, assumed: str) -> str:
    """What to say when a file without an embedded configuration, loaded with no
    configuration given, does not fit the ``assumed`` (paper) network."""
    return (
        f"{path}: no network configuration was given (the model card's 'network') "
        f"and the file embeds none ('{NETWORK_KEY}': the authors' files and ours "
        f"written before it existed), so {assumed} was assumed and does not fit. "
        "Keep the file's model.json beside it (a run's model folder), or pass the "
        "configuration it was trained with"
    )


# ----------------------------------------------------------------------------------
# The allowlist of inert bookkeeping globals
# ----------------------------------------------------------------------------------

# Packages whose every class/function becomes a placeholder. Lightning writes its
# bookkeeping next to ``state_dict`` (Lightning 1.0.8 for the MaskGIT VQGAN,
# 2.2.1 for the Di4C SDTT students; see the authors' maskgit-pytorch/ and sdtt/
# environments): hyper-parameters (AttributeDict or an OmegaConf container, and
# its type under ``hyper_parameters_type``), callback classes used as state keys,
# loop and trainer enums.
INERT_PACKAGES: dict[str, str] = {
    "omegaconf": "OmegaConf configs (DictConfig, ListConfig, nodes, metadata) "
    "stored as Lightning hyper-parameters",
    "pytorch_lightning": "Lightning 1.x bookkeeping (AttributeDict, callbacks, enums)",
    "lightning": "Lightning 2.x bookkeeping (AttributeDict, callbacks, enums)",
    "lightning_fabric": "Lightning 2.x AttributeDict and fabric enums",
    "pathlib": "paths in hyper-parameters and callback states",
    "typing": "type annotations held in OmegaConf metadata (typing.Any, ...)",
    "numpy.dtypes": "numpy >= 1.25 dtype classes of pickled numpy scalars",
}

# Single globals that become placeholders.
INERT_GLOBALS: dict[str, str] = {
    "argparse.Namespace": "hyper-parameters of argparse-driven training scripts",
    "collections.defaultdict": "dict-valued bookkeeping; read as a plain dict",
    "datetime.date": "timestamps in callback states",
    "datetime.datetime": "timestamps in callback states",
    "datetime.time": "timestamps in callback states",
    "datetime.timedelta": "durations (ModelCheckpoint train_time_interval, Timer)",
    "datetime.timezone": "timezone of a pickled datetime",
    "numpy.dtype": "dtype of a pickled numpy scalar or array",
    "numpy.ndarray": "numpy arrays in logged metrics",
    "numpy.core.multiarray.scalar": "numpy scalars in logged metrics (numpy 1.x)",
    "numpy._core.multiarray.scalar": "numpy scalars in logged metrics (numpy 2.x)",
    "numpy.core.multiarray._reconstruct": "numpy arrays (numpy 1.x)",
    "numpy._core.multiarray._reconstruct": "numpy arrays (numpy 2.x)",
    # type objects OmegaConf records as object_type / ref_type / element_type
    **{
        f"builtins.{n}": "a builtin type recorded in OmegaConf metadata"
        for n in (
            "object",
            "dict",
            "list",
            "tuple",
            "frozenset",
            "int",
            "float",
            "bool",
            "str",
            "bytes",
        )
    },
}
# Deliberately absent: functools.partial, copyreg.*, operator.*, builtins
# callables (eval, exec, getattr, __import__, ...), os/posix/nt/sys/subprocess,
# and any torch global outside torch's weights-only set (whole pickled modules).
# No known container needs them; a file that does is refused and the message
# names the global.


def _inert_name(full: str) -> bool:
    if full in INERT_GLOBALS:
        return True
    return any(full.startswith(pkg + ".") for pkg in INERT_PACKAGES)


class InertObject:
    """Placeholder for a pickled object of an allowlisted bookkeeping class.

    It records what the pickle gave it (``args``, ``kwargs``, ``state``,
    ``items``, ``list_items``) and nothing else: the real class is never
    imported, and no method of it ever runs. Instances are not callable.
    ``global_name`` (on the per-global subclass) says which class it stands for.
    """

    global_name = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> InertObject:
        self = object.__new__(cls)
        d = self.__dict__
        d["args"], d["kwargs"], d["state"] = args, kwargs, None
        d["items"], d["list_items"] = {}, []
        return self

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.__dict__["state"] = state

    def __setitem__(self, key: Any, value: Any) -> None:  # SETITEM(S) of dict types
        self.__dict__["items"][key] = value

    def append(self, value: Any) -> None:  # APPEND(S) of list types
        self.__dict__["list_items"].append(value)

    def extend(self, values: Any) -> None:
        self.__dict__["list_items"].extend(values)

    def __repr__(self) -> str:
        return f"<inert {self.global_name}>"


@functools.cache
def _placeholder(full: str) -> type[InertObject]:
    return type(
        "Inert[" + full + "]",
        (InertObject,),
        {"__module__": __name__, "global_name": full},
    )


def _inert_defaultdict(*args: Any) -> dict:
    """``collections.defaultdict(factory)`` read as a plain dict (factory dropped)."""
    return {}


def _torch_safe_globals() -> dict[str, Any]:
    """What ``torch.load(weights_only=True)`` resolves a global to, by full name.

    torch's built-in set (tensor rebuild functions, dtypes, storages,
    ``OrderedDict``, ``torch.Size``, ...) plus globals a user registered with
    ``torch.serialization.add_safe_globals``; never a blocklisted module.
    """
    from torch import _weights_only_unpickler as wo

    allowed = dict(wo._get_allowed_globals())
    for name, obj in wo._get_user_allowed_globals().items():
        if name.split(".", 1)[0] not in wo._blocklisted_modules:
            allowed.setdefault(name, obj)
    return allowed


def _normalise(module: str, name: str, proto: int) -> tuple[str, str]:
    """Python 2 names (``__builtin__.long``) as Python's own unpickler maps them."""
    if proto < 3:
        if (module, name) in _compat_pickle.NAME_MAPPING:
            return _compat_pickle.NAME_MAPPING[(module, name)]
        if module in _compat_pickle.IMPORT_MAPPING:
            return _compat_pickle.IMPORT_MAPPING[module], name
    return module, name


class _Refused(pickle.UnpicklingError):
    """Raised inside the unpickler; :func:`load_container` turns it into
    :class:`UnsafeCheckpointError` naming the file."""

    def __init__(self, reason: str, name: str | None = None):
        super().__init__(reason)
        self.reason, self.name = reason, name


class RestrictedUnpickler(pickle._Unpickler):
    """Unpickler that can only build torch's weights-only globals and placeholders.

    Based on the pure-Python unpickler, so the opcodes that could reach code
    without ``find_class`` are closed too: BUILD is allowed only on
    placeholders, tensors and dicts (never on a class object), and the
    copyreg extension opcodes (a process-wide cache) are refused.
    ``inert_seen`` lists the placeholder globals met.
    """

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._safe = _torch_safe_globals()
        self.inert_seen: set[str] = set()

    def find_class(self, module: str, name: str) -> Any:
        module, name = _normalise(module, name, self.proto)
        full = f"{module}.{name}"
        if full in self._safe:
            return self._safe[full]
        if full == "collections.defaultdict":
            self.inert_seen.add(full)
            return _inert_defaultdict
        if _inert_name(full):
            self.inert_seen.add(full)
            return _placeholder(full)
        raise _Refused(
            f"needs the global '{full}', which is neither torch weights-only data "
            "nor inert bookkeeping (allowlist in di4c/checkpoints.py)",
            full,
        )

    def load_build(self) -> None:
        inst = self.stack[-2]  # the state is on top
        buildable = (InertObject, torch.Tensor, dict)
        if isinstance(inst, type) or not isinstance(inst, buildable):
            raise _Refused(f"sets the state of a {type(inst).__name__} object (BUILD)")
        super().load_build()

    dispatch[pickle.BUILD[0]] = load_build

    def _refuse_extension(self) -> None:
        raise _Refused("uses copyreg extension codes")

    for _op in (pickle.EXT1, pickle.EXT2, pickle.EXT4):
        dispatch[_op[0]] = _refuse_extension
    del _op


def _restricted_module(seen: set[str]) -> types.ModuleType:
    """A ``pickle_module`` for ``torch.load`` that unpickles with the restrictions.

    ``seen`` collects the placeholder globals of every unpickler it makes.
    """

    class _Unpickler(RestrictedUnpickler):
        def load(self) -> Any:
            try:
                return super().load()
            finally:
                seen.update(self.inert_seen)

    mod = types.ModuleType("di4c_restricted_pickle")
    mod.Unpickler = _Unpickler  # type: ignore[attr-defined]
    mod.load = lambda f, **kw: _Unpickler(f, **kw).load()  # type: ignore[attr-defined]
    mod.UnpicklingError = pickle.UnpicklingError  # type: ignore[attr-defined]
    return mod


# ----------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------


def _first_line(e: BaseException) -> str:
    """``Type: first sentence`` of an exception, for a one-line message."""
    text = str(e).strip().splitlines()
    if not text:
        return type(e).__name__
    return f"{type(e).__name__}: {text[0].split('. ')[0][:200]}"


def _diagnosis(path: Path) -> str:
    """What the file looks like, for the one-line error."""
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(b"PK\x03\x04"):
        if not zipfile.is_zipfile(path):
            return "a truncated or corrupt zip archive (download or write cut short?)"
        return "a zip archive that is truncated, corrupt or not a torch checkpoint"
    if head[:1] == b"\x80":
        return "a truncated or corrupt pickle / legacy torch file"
    return f"not a torch checkpoint (first bytes {head!r})"


def _torch_load(path: Path, **kw: Any) -> Any:
    """``torch.load`` on CPU, memory-mapped for zip containers."""
    if zipfile.is_zipfile(path):
        try:
            return torch.load(path, map_location="cpu", mmap=True, **kw)
        except RuntimeError as e:
            if "mmap" not in str(e):
                raise
    return torch.load(path, map_location="cpu", **kw)


def inert_globals(path: str | os.PathLike) -> set[str]:
    """The placeholder globals a file's pickle needs (empty for a weights-only file).

    Raises like :func:`load_container`; reads with the restricted unpickler.
    """
    seen: set[str] = set()
    _load_restricted(Path(path), "checkpoint", seen)
    return seen


def _load_restricted(path: Path, what: str, seen: set[str]) -> Any:
    try:
        return _torch_load(
            path, weights_only=False, pickle_module=_restricted_module(seen)
        )
    except _Refused as e:
        hint = ""
        if e.name:
            hint = (
                f"; add '{e.name}' to that allowlist only if it is harmless "
                "bookkeeping of a genuine file"
            )
        raise UnsafeCheckpointError(
            f"{path}: refused to load {what}: its pickle {e.reason}; nothing from "
            "the file was run. Delete the file and fetch it again from its "
            "published source" + hint
        ) from None
    except Exception as e:
        raise CheckpointFormatError(
            f"{path}: {what} cannot be read: the file is {_diagnosis(path)} "
            f"({_first_line(e)})"
        ) from e


def load_container(
    path: str | os.PathLike, what: str, *, allow_objects: bool = False
) -> Any:
    """Read a ``torch.save``\\ d container on the CPU, never running code from it.

    Args:
        path: the file.
        what: what the file should be (e.g. ``"MaskGIT transformer checkpoint"``),
            used in error messages.
        allow_objects: return files whose pickle also holds allowlisted
            bookkeeping objects (Lightning ``.ckpt``), with those objects as
            :class:`InertObject` placeholders. Without it such a file raises
            :class:`CheckpointFormatError`.

    Raises:
        MissingCheckpointError: no such file.
        CheckpointFormatError: empty, truncated, not a torch file, or (without
            ``allow_objects``) holding pickled objects.
        UnsafeCheckpointError: the pickle needs a global outside the allowlist.
    """
    path = Path(path)
    if not path.exists():
        raise MissingCheckpointError(f"{what} not found: {path}")
    if not path.is_file():
        raise CheckpointFormatError(f"{path}: {what} is not a file")
    if path.stat().st_size == 0:
        raise CheckpointFormatError(
            f"{path}: {what} is empty (0 bytes); delete it and write or fetch it again"
        )
    try:
        return _torch_load(path, weights_only=True)
    except pickle.UnpicklingError:
        pass  # objects the weights-only loader refuses, or not a pickle at all
    except Exception as e:
        raise CheckpointFormatError(
            f"{path}: {what} cannot be read: the file is {_diagnosis(path)} "
            f"({_first_line(e)})"
        ) from e
    seen: set[str] = set()
    obj = _load_restricted(path, what, seen)
    if seen and not allow_objects:
        raise CheckpointFormatError(
            f"{path}: {what} holds pickled Python objects ({', '.join(sorted(seen))})"
            " where only tensors, containers and numbers belong; it is not a "
            f"{what} or was written by other code"
        )
    return obj
