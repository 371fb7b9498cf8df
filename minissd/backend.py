"""The array backend: NumPy on the CPU or CuPy on an NVIDIA GPU.

All numeric code in minissd reaches arrays through this module (the Chainer ``xp`` pattern), so the
same code runs on both libraries::

    from minissd import backend
    xp = backend.xp()          # the numpy or cupy module currently selected
    a = xp.zeros((2, 3), dtype=xp.float32)

The few places where NumPy and CuPy are spelled differently (scatter-add, strided views, moving an
array to the host, random generators) live here and nowhere else.

The backend is chosen by ``set_backend("numpy" | "cupy")`` or, at import time, by the environment
variable ``MINISSD_BACKEND``. CPU threads (BLAS and minissd's own copy loops) are set by
``set_num_threads(n)`` or the environment variable ``MINISSD_NUM_THREADS``; ``blas_threads(n)``
limits BLAS for one block. CuPy is optional: ``import minissd`` never needs it, and asking for it
when it is missing (or when no GPU is visible) raises an error that says how to install it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import types
from collections.abc import Iterator
from typing import Any

import numpy

_BACKENDS = ("numpy", "cupy")
_name: str = "numpy"
_xp: types.ModuleType = numpy

_CUPY_HELP = (
    "CuPy is needed for the 'cupy' backend. Install the wheel that matches your CUDA version, e.g. "
    "`pip install cupy-cuda12x` for CUDA 12 or `pip install cupy-cuda11x` for CUDA 11 "
    "(or `pip install -e \".[gpu]\"`), on a machine with an NVIDIA GPU."
)


def _import_cupy() -> types.ModuleType:
    """Import CuPy and check that it sees a GPU, or raise RuntimeError saying how to get there."""
    try:
        import cupy  # noqa: PLC0415 - optional dependency, imported on demand
    except ImportError as exc:
        raise RuntimeError(f"set_backend('cupy'): CuPy is not installed. {_CUPY_HELP}") from exc
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError, or a missing/old driver
        raise RuntimeError(
            f"set_backend('cupy'): CuPy is installed but no CUDA GPU is usable ({exc}). {_CUPY_HELP}"
        ) from exc
    if count < 1:
        raise RuntimeError(f"set_backend('cupy'): CuPy is installed but no CUDA GPU was found. {_CUPY_HELP}")
    return cupy


def cupy_available() -> bool:
    """True when CuPy imports and sees at least one GPU (never raises)."""
    try:
        _import_cupy()
    except RuntimeError:
        return False
    return True


def set_backend(name: str) -> None:
    """Select the array library: ``"numpy"`` (CPU) or ``"cupy"`` (NVIDIA GPU).

    Arrays created before the switch stay where they are; move them with :func:`asarray`.
    """
    global _name, _xp
    if not isinstance(name, str) or name.lower() not in _BACKENDS:
        raise ValueError(f"set_backend(name): expected one of {_BACKENDS}, got {name!r}")
    name = name.lower()
    _xp = _import_cupy() if name == "cupy" else numpy
    _name = name


def get_backend() -> str:
    """The name of the selected backend, ``"numpy"`` or ``"cupy"``."""
    return _name


def xp() -> types.ModuleType:
    """The selected array module (``numpy`` or ``cupy``)."""
    return _xp


def _is_cupy_array(a: Any) -> bool:
    # A CuPy array can only exist once cupy has been imported, so looking in sys.modules is enough
    # (and never imports CuPy, nor touches the GPU, on a NumPy-only machine).
    ndarray = getattr(sys.modules.get("cupy"), "ndarray", None)
    return ndarray is not None and isinstance(a, ndarray)


# backend sits below autograd and must not import it, so autograd's Tensor registers itself here
_tensor_types: tuple[type, ...] = ()


def register_tensor_type(cls: type) -> None:
    """Let :func:`asarray` and :func:`to_numpy` unwrap instances of ``cls`` (and subclasses) to ``.data``.

    ``minissd.autograd.Tensor`` registers itself when it is defined.
    """
    global _tensor_types
    if not isinstance(cls, type):
        raise TypeError(f"register_tensor_type(cls): expected a class, got {cls!r}")
    if cls not in _tensor_types:
        _tensor_types = (*_tensor_types, cls)


def _unwrap_tensor(a: Any) -> Any:
    return a.data if isinstance(a, _tensor_types) else a


def get_array_module(*arrays: Any) -> types.ModuleType:
    """The array module that owns ``arrays`` (cupy if any of them is a CuPy array), else numpy.

    Called by every op's backward, so it is cheap: no import and no GPU query.
    """
    for a in arrays:
        if _is_cupy_array(a):
            return sys.modules["cupy"]
    return numpy


def is_array(a: Any) -> bool:
    """True for a NumPy or CuPy ndarray (not for Python or NumPy scalars, lists or Tensors)."""
    return isinstance(a, numpy.ndarray) or _is_cupy_array(a)


def asarray(a: Any, dtype: Any = None) -> Any:
    """``a`` (array, Tensor or array-like) as an array of the selected backend.

    Copies between host and device only when needed; an array already on the backend with the
    requested dtype is returned as is.
    """
    a = _unwrap_tensor(a)
    if _name == "numpy":
        return numpy.asarray(to_numpy(a), dtype=dtype)
    return _xp.asarray(a, dtype=dtype)


def to_numpy(a: Any) -> numpy.ndarray:
    """A NumPy array on the host from a NumPy/CuPy array, a Tensor, or anything array-like."""
    a = _unwrap_tensor(a)
    if _is_cupy_array(a):
        return a.get()
    return numpy.asarray(a)


def to_float(a: Any) -> float:
    """A Python float from a 0-d or 1-element array on either backend (one device sync on CuPy)."""
    return float(to_numpy(a).reshape(-1)[0])


def scatter_add(target: Any, indices: Any, values: Any) -> None:
    """In-place ``target[indices] += values`` where repeated indices accumulate.

    NumPy spells this ``numpy.add.at``; CuPy spells it ``cupy.add.at`` (CuPy >= 13) or
    ``cupyx.scatter_add`` (older). ``target[indices] += values`` would keep only one contribution per
    repeated index, which is why this helper exists. Both are slow compared
    to slicing, so hot paths (col2im, pooling) avoid it; it serves indexing backward.
    """
    mod = get_array_module(target)
    if mod is numpy:
        numpy.add.at(target, indices, values)
    elif hasattr(mod.add, "at"):  # pragma: no cover - GPU only; CuPy >= 13 has ufunc.at
        mod.add.at(target, indices, values)
    else:  # pragma: no cover - GPU only, older CuPy
        import cupyx  # noqa: PLC0415

        cupyx.scatter_add(target, indices, values)


def as_strided(a: Any, shape: tuple[int, ...], strides: tuple[int, ...]) -> Any:
    """A strided view of ``a`` (read only use). Strides are in bytes, as in NumPy."""
    mod = get_array_module(a)
    if mod is numpy:
        return numpy.lib.stride_tricks.as_strided(a, shape=shape, strides=strides, writeable=False)
    return mod.lib.stride_tricks.as_strided(a, shape=shape, strides=strides)  # pragma: no cover


def seed(n: int) -> numpy.random.Generator:
    """Seed the backend's global random state and return a fresh ``numpy.random.Generator(n)``.

    minissd itself draws randomness only from explicit generators; this helper exists so that a
    notebook or script can make everything repeatable with one call.
    """
    if isinstance(n, bool) or not isinstance(n, (int, numpy.integer)) or n < 0:
        raise ValueError(f"seed(n): expected a non-negative integer, got {n!r}")
    numpy.random.seed(int(n) % 2**32)
    if _name == "cupy":  # pragma: no cover - GPU only
        _xp.random.seed(int(n) % 2**32)
    return numpy.random.default_rng(int(n))


def default_float() -> Any:
    """The dtype used for network arrays (float32)."""
    return _xp.float32


def synchronize() -> None:
    """Wait for queued GPU work (no-op on NumPy); use before reading a timer."""
    if _name == "cupy":  # pragma: no cover - GPU only
        _xp.cuda.get_current_stream().synchronize()


# --------------------------------------------------------------------------- threads
def _available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS reports it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def _check_threads(n: Any, where: str) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, numpy.integer)) or n < 1:
        raise ValueError(f"{where}: expected a positive integer number of threads, got {n!r}")
    return int(n)


def _default_threads() -> int:
    """``MINISSD_NUM_THREADS`` if set, else every available core."""
    env = os.environ.get("MINISSD_NUM_THREADS", "").strip()
    if not env:
        return _available_cores()
    try:
        return _check_threads(int(env), "")
    except ValueError:
        raise ValueError(
            f"environment variable MINISSD_NUM_THREADS={env!r}: expected a positive integer number of threads"
        ) from None


_num_threads: int = _default_threads()
_blas: Any = None  # threadpoolctl.ThreadpoolController, made on first use (it scans the loaded libraries)


def _blas_controller(refresh: bool = False) -> Any:
    global _blas
    if _blas is None or refresh:
        import threadpoolctl  # noqa: PLC0415 - only needed once threads are set

        _blas = threadpoolctl.ThreadpoolController()
    return _blas


def set_num_threads(n: int | None) -> None:
    """Use ``n`` CPU threads: for BLAS (matrix products, through threadpoolctl) and minissd's own loops.

    ``None`` goes back to the default: the environment variable ``MINISSD_NUM_THREADS``, else all
    available cores. Until this is called (or that variable is set), BLAS keeps its own setting
    (all cores, or ``OPENBLAS_NUM_THREADS`` / ``OMP_NUM_THREADS`` if you set one). Importing minissd
    never changes environment variables.
    """
    global _num_threads
    n = _default_threads() if n is None else _check_threads(n, "set_num_threads(n)")
    _blas_controller(refresh=True).limit(limits=n, user_api="blas")  # refresh: BLAS loaded since counts
    _num_threads = n


def get_num_threads() -> int:
    """The number of CPU threads minissd uses (see :func:`set_num_threads`)."""
    return _num_threads


num_threads = get_num_threads  # the short name the copy loops (nn.im2col) use


@contextlib.contextmanager
def blas_threads(n: int) -> Iterator[None]:
    """Run the block with BLAS limited to ``n`` threads (at most :func:`get_num_threads`), then restore.

    For one product whose shape threads suit badly, e.g. a GEMM with a huge inner dimension where the
    threads mostly wait at barriers. A no-op on the CuPy backend (the GPU's BLAS has no CPU threads).
    """
    n = _check_threads(n, "blas_threads(n)")
    if _name == "cupy":  # pragma: no cover - GPU only
        yield
        return
    with _blas_controller().limit(limits=min(n, _num_threads), user_api="blas"):
        yield


def _init_from_env() -> None:
    name = os.environ.get("MINISSD_BACKEND", "").strip()
    if name:
        try:
            set_backend(name)
        except (ValueError, RuntimeError) as exc:
            # name the variable: the user never called set_backend themselves
            raise type(exc)(f"environment variable MINISSD_BACKEND={name!r}: {exc}") from exc


_init_from_env()
if os.environ.get("MINISSD_NUM_THREADS", "").strip():
    set_num_threads(_num_threads)  # the user asked for this count: apply it to BLAS as well
