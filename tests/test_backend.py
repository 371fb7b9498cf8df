"""Tests for minissd.backend: choosing NumPy or CuPy, and the helpers whose spellings differ.

CuPy is optional. The error paths for a missing CuPy or a missing GPU are tested by faking the
``cupy`` module with monkeypatch, so they run on every machine; the CuPy arrays themselves are
tested through the ``xp`` fixture, which skips the CuPy case where no GPU is present.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import minissd
from minissd import Tensor, backend

REPO = Path(__file__).resolve().parents[1]


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -c code`` in a fresh interpreter in the repo root (MINISSD_BACKEND unset unless given)."""
    environ = {k: v for k, v in os.environ.items() if k != "MINISSD_BACKEND"}
    environ.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                          env=environ, timeout=60)


# Put in front of code run in a subprocess: makes `import cupy` fail as if CuPy were not installed.
BLOCK_CUPY = "import sys; sys.modules['cupy'] = None; sys.modules['cupyx'] = None\n"


# --------------------------------------------------------------------------- choosing a backend
def test_set_and_get_backend_numpy() -> None:
    minissd.set_backend("numpy")
    assert minissd.get_backend() == "numpy"
    assert backend.xp() is np
    minissd.set_backend("NumPy")  # case does not matter
    assert minissd.get_backend() == "numpy"


@pytest.mark.parametrize("bad", ["torch", "", "gpu", None, 3])
def test_bad_backend_name_is_a_clear_error(bad: Any) -> None:
    before = backend.get_backend()
    with pytest.raises(ValueError) as info:
        backend.set_backend(bad)
    msg = str(info.value)
    assert "'numpy'" in msg and "'cupy'" in msg and repr(bad) in msg
    assert backend.get_backend() == before  # unchanged


def test_cupy_missing_gives_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    minissd.set_backend("numpy")
    monkeypatch.setitem(sys.modules, "cupy", None)  # `import cupy` now raises ImportError
    with pytest.raises(RuntimeError, match=r"CuPy is not installed.*pip install cupy-cuda12x") as info:
        backend.set_backend("cupy")
    assert "cupy-cuda11x" in str(info.value)  # the hint covers both CUDA majors
    assert backend.get_backend() == "numpy"  # a failed switch changes nothing
    assert backend.xp() is np
    assert backend.cupy_available() is False


def _fake_cupy(device_count: Any) -> types.ModuleType:
    """A stand-in `cupy` module whose getDeviceCount returns ``device_count`` or raises it."""

    def get_device_count() -> int:
        if isinstance(device_count, Exception):
            raise device_count
        return device_count

    fake = types.ModuleType("cupy")
    fake.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=get_device_count))
    fake.ndarray = type("ndarray", (), {})
    return fake


@pytest.mark.parametrize(
    ("count", "message"),
    [(0, "no CUDA GPU was found"),
     (RuntimeError("cudaErrorNoDevice"), "no CUDA GPU is usable.*cudaErrorNoDevice")],
)
def test_cupy_without_gpu_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, count: Any, message: str) -> None:
    minissd.set_backend("numpy")
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(count))
    with pytest.raises(RuntimeError, match=message + ".*pip install"):
        backend.set_backend("cupy")
    assert backend.get_backend() == "numpy"
    assert backend.cupy_available() is False


def test_xp_fixture_selects_the_backend(xp: Any) -> None:
    assert backend.xp() is xp
    assert backend.get_backend() == xp.__name__
    t = Tensor([1.0, 2.0])
    assert backend.get_array_module(t.data) is xp


# --------------------------------------------------------------------------- arrays on either backend
def test_to_numpy(xp: Any) -> None:
    a = xp.asarray([[1.0, 2.0], [3.0, 4.0]])
    for value in (a, Tensor(a), Tensor(a, requires_grad=True) * 1.0):
        out = minissd.to_numpy(value)
        assert type(out) is np.ndarray
        np.testing.assert_array_equal(out, [[1.0, 2.0], [3.0, 4.0]])
    assert minissd.to_numpy([1, 2]).tolist() == [1, 2]
    assert minissd.to_numpy(2.5).shape == ()
    host = np.arange(3.0)
    assert minissd.to_numpy(host) is host  # no copy for a host array


def test_to_numpy_unwraps_tensor_subclasses() -> None:
    class Parameterish(Tensor):
        pass

    out = minissd.to_numpy(Parameterish(np.array([7.0])))
    assert type(out) is np.ndarray and out.tolist() == [7.0]


def test_to_float_and_asarray(xp: Any) -> None:
    assert backend.to_float(xp.asarray([[2.5]])) == 2.5
    moved = backend.asarray(np.array([1, 2]), dtype=np.float32)
    assert backend.get_array_module(moved) is xp and moved.dtype == np.float32
    assert backend.get_array_module(backend.asarray(Tensor([1.0]))) is xp


def test_is_array_and_get_array_module() -> None:
    assert backend.is_array(np.zeros(2))
    assert not backend.is_array([0.0, 1.0])
    assert not backend.is_array(np.float64(1.0))  # a NumPy scalar is not an array
    assert not backend.is_array(Tensor([1.0]))
    assert backend.get_array_module(np.zeros(1), 3.0) is np


def test_default_float_is_float32(xp: Any) -> None:
    assert backend.default_float() == np.float32


@pytest.mark.parametrize("repeat", [False, True])
def test_scatter_add_accumulates_repeated_indices(xp: Any, repeat: bool) -> None:
    target = xp.zeros(4)
    idx = xp.asarray([0, 1, 1, 3, 1]) if repeat else xp.asarray([0, 1, 3])
    values = xp.asarray([1.0, 2.0, 3.0, 4.0, 5.0]) if repeat else xp.asarray([1.0, 2.0, 4.0])
    backend.scatter_add(target, idx, values)
    expected = [1.0, 10.0, 0.0, 4.0] if repeat else [1.0, 2.0, 0.0, 4.0]  # 2 + 3 + 5 at index 1
    np.testing.assert_array_equal(minissd.to_numpy(target), expected)


def test_scatter_add_rows_and_tuples(xp: Any) -> None:
    target = xp.zeros((3, 2))
    backend.scatter_add(target, xp.asarray([2, 0, 2]), xp.asarray([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]))
    np.testing.assert_array_equal(minissd.to_numpy(target), [[2.0, 2.0], [0.0, 0.0], [4.0, 4.0]])
    target = xp.zeros((2, 2))
    backend.scatter_add(target, (xp.asarray([1, 1, 0]), xp.asarray([0, 0, 1])), xp.asarray([1.0, 2.0, 5.0]))
    np.testing.assert_array_equal(minissd.to_numpy(target), [[0.0, 5.0], [3.0, 0.0]])


def test_as_strided_sliding_windows(xp: Any) -> None:
    a = xp.arange(5.0)
    s = a.strides[0]
    windows = backend.as_strided(a, shape=(3, 3), strides=(s, s))
    np.testing.assert_array_equal(minissd.to_numpy(windows), [[0, 1, 2], [1, 2, 3], [2, 3, 4]])


# --------------------------------------------------------------------------- seeding
def test_seed_makes_randomness_repeatable(xp: Any) -> None:
    g1 = minissd.seed(7)
    host1, dev1 = np.random.rand(3), minissd.to_numpy(xp.random.rand(3))
    draws1 = g1.standard_normal(4)
    g2 = minissd.seed(7)
    np.testing.assert_array_equal(np.random.rand(3), host1)
    np.testing.assert_array_equal(minissd.to_numpy(xp.random.rand(3)), dev1)
    np.testing.assert_array_equal(g2.standard_normal(4), draws1)
    assert not np.array_equal(minissd.seed(8).standard_normal(4), draws1)
    assert isinstance(g1, np.random.Generator)


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True])
def test_seed_rejects_bad_values(bad: Any) -> None:
    with pytest.raises(ValueError, match="non-negative integer"):
        minissd.seed(bad)


# --------------------------------------------------------------------------- importing without CuPy
def test_import_minissd_works_without_cupy() -> None:
    code = BLOCK_CUPY + (
        "import minissd\n"
        "print(minissd.get_backend())\n"
        "print(sys.modules.get('cupy'))\n"  # still the blocker: minissd never tried a real import
    )
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["numpy", "None"]


def test_import_does_not_load_cupy_on_the_numpy_backend() -> None:
    proc = run_python("import sys, minissd; print('cupy' in sys.modules)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_environment_variable_selects_the_backend() -> None:
    proc = run_python("import minissd; print(minissd.get_backend())", MINISSD_BACKEND=" NumPy ")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "numpy"


@pytest.mark.parametrize(
    ("value", "message"),
    [("tensorflow", r"MINISSD_BACKEND='tensorflow'.*expected one of"),
     ("cupy", r"MINISSD_BACKEND='cupy'.*CuPy is not installed.*pip install")],
)
def test_bad_environment_variable_names_itself(value: str, message: str) -> None:
    proc = run_python(BLOCK_CUPY + "import minissd", MINISSD_BACKEND=value)
    assert proc.returncode != 0
    assert re.search(message, proc.stderr), proc.stderr


# --------------------------------------------------------------------------- Tensor recognition
def test_only_registered_tensor_types_are_unwrapped() -> None:
    class Tensor:  # same class name as autograd's, but not a registered type: left alone
        data = np.array([1.0, 2.0])

    assert minissd.to_numpy(Tensor()).dtype == object
    with pytest.raises(TypeError, match=r"register_tensor_type\(cls\): expected a class"):
        backend.register_tensor_type("Tensor")


# --------------------------------------------------------------------------- threads
def _blas_threads() -> list[int]:
    """The thread limit of every BLAS library threadpoolctl finds in this process."""
    import threadpoolctl

    return [lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"]


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@pytest.fixture
def restore_threads(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Put minissd's thread count and the BLAS limits back after the test; skip where BLAS is invisible."""
    import threadpoolctl

    if not _blas_threads():
        pytest.skip("threadpoolctl finds no BLAS library in this NumPy build")
    monkeypatch.delenv("MINISSD_NUM_THREADS", raising=False)
    before, blas_before = backend.get_num_threads(), _blas_threads()
    yield
    backend.set_num_threads(before)
    threadpoolctl.threadpool_limits(limits=blas_before[0], user_api="blas")


def test_set_num_threads_round_trip(restore_threads: Any) -> None:
    minissd.set_num_threads(1)
    assert minissd.get_num_threads() == backend.num_threads() == 1
    assert set(_blas_threads()) == {1}
    minissd.set_num_threads(2)
    assert minissd.get_num_threads() == 2 and set(_blas_threads()) == {2}
    minissd.set_num_threads(np.int64(1))  # NumPy integers are integers
    assert minissd.get_num_threads() == 1
    minissd.set_num_threads(None)  # the default: every core this process may use
    assert minissd.get_num_threads() == _cores()


@pytest.mark.parametrize("bad", [0, -1, "x", 1.5, True])
def test_bad_thread_counts_name_the_argument(bad: Any, restore_threads: Any) -> None:
    before = minissd.get_num_threads()
    with pytest.raises(ValueError, match=rf"set_num_threads\(n\): expected a positive integer.*{re.escape(repr(bad))}"):
        minissd.set_num_threads(bad)
    assert minissd.get_num_threads() == before
    with pytest.raises(ValueError, match=r"blas_threads\(n\): expected a positive integer"):
        with backend.blas_threads(bad):
            pass


def test_blas_threads_limits_the_block_and_restores(restore_threads: Any) -> None:
    minissd.set_num_threads(2)
    with backend.blas_threads(1):
        assert set(_blas_threads()) == {1}
    assert set(_blas_threads()) == {2}
    with pytest.raises(KeyError), backend.blas_threads(1):
        raise KeyError("restored even when the block fails")
    assert set(_blas_threads()) == {2}
    minissd.set_num_threads(1)
    with backend.blas_threads(2):  # never more than minissd's own setting
        assert set(_blas_threads()) == {1}


def test_import_leaves_the_environment_alone() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "MINISSD_NUM_THREADS")}
    code = ("import os, minissd\n"
            "print(os.environ.get('OPENBLAS_NUM_THREADS'), os.environ.get('OMP_NUM_THREADS', 'unset'))\n"
            "print(minissd.get_num_threads())\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.split("\n")
    assert lines[0].split()[0] == "None"
    assert int(lines[1]) == _cores()  # the default: every core this process may use


def test_environment_variable_sets_the_thread_default() -> None:
    code = ("import minissd, threadpoolctl\n"
            "print(minissd.get_num_threads())\n"
            "print(sorted({l['num_threads'] for l in threadpoolctl.threadpool_info() if l['user_api'] == 'blas'}))\n")
    proc = run_python(code, MINISSD_NUM_THREADS=" 1 ")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["1", "[1]"]  # applied to BLAS too


@pytest.mark.parametrize("value", ["0", "-1", "x"])
def test_bad_thread_environment_variable_names_itself(value: str) -> None:
    proc = run_python("import minissd", MINISSD_NUM_THREADS=value)
    assert proc.returncode != 0
    assert re.search(rf"MINISSD_NUM_THREADS='{value}'.*positive integer", proc.stderr), proc.stderr
