"""Saving and loading weights as ``.npz`` files, safely.

A checkpoint is a NumPy ``.npz`` archive of a module's ``state_dict()`` (one array per dotted name). It is
read with ``allow_pickle=False``, so opening a file from elsewhere can never run code, and written to a
temporary file in the same folder, flushed to disk and then renamed: a crash or a full disk during the
write leaves the previous checkpoint intact, because a rename within one file system is atomic.

:func:`save_npz` and :func:`load_npz` are the package's only ``.npz`` writer and reader; anything that
stores arrays (training checkpoints with their optimizer state, exported weights) goes through them.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from typing import Any

import numpy

from .. import backend
from .module import IncompatibleKeys, Module

__all__ = ["load", "load_npz", "save", "save_npz"]


def save_npz(path: str | os.PathLike[str], arrays: Mapping[str, Any]) -> None:
    """Write ``arrays`` (name -> array on either backend, number or string) to ``path`` atomically.

    The file is written exactly at ``path`` (NumPy would otherwise append ``.npz`` to other names).
    Object arrays are refused (they would need pickle to be read back).
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    host = {str(k): backend.to_numpy(v) for k, v in arrays.items()}
    for k, v in host.items():
        if v.dtype == object:
            raise TypeError(f"save_npz: {k!r} is not a numeric array (got an object array)")
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            numpy.savez(f, **host)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_folder(folder)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _fsync_folder(folder: str) -> None:
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a folder; the file's own data is already on disk
    finally:
        os.close(fd)


def load_npz(path: str | os.PathLike[str]) -> dict[str, numpy.ndarray]:
    """Read every array of an ``.npz`` file into a dict of host arrays (``allow_pickle=False``)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"load_npz(path): no such file {path!r}")
    with numpy.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def save(module: Module, path: str | os.PathLike[str]) -> None:
    """Save ``module.state_dict()`` (parameters and buffers) to the ``.npz`` file ``path``, atomically."""
    if not isinstance(module, Module):
        raise TypeError(f"save(module): expected a Module, got {type(module).__name__}")
    save_npz(path, module.state_dict())


def load(module: Module, path: str | os.PathLike[str], strict: bool = True) -> IncompatibleKeys:
    """Load the weights in ``path`` into ``module`` (see :meth:`Module.load_state_dict` for ``strict``)."""
    if not isinstance(module, Module):
        raise TypeError(f"load(module): expected a Module, got {type(module).__name__}")
    return module.load_state_dict(load_npz(path), strict=strict)
