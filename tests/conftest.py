"""Shared pytest fixtures for minissd's tests.

Fixtures any test file can use (no import needed, pytest finds them by argument name):

``xp``
    Runs the test once per backend. The test receives the array module (``numpy`` or ``cupy``) and
    the minissd backend is switched to it for the duration of the test, then restored::

        def test_relu(xp):
            x = Tensor(xp.asarray([-1.0, 2.0]))
            assert minissd.to_numpy(x.relu()).tolist() == [0.0, 2.0]

    The CuPy case carries the ``gpu`` marker (``pytest -m gpu`` runs only those, ``-m "not gpu"``
    skips them) and is skipped, with the reason, when CuPy is not installed or sees no GPU.

``rng``
    A ``numpy.random.Generator`` seeded with :data:`SEED`, fresh for every test, so each test is
    repeatable on its own and independent of test order. Draw on the host, then move to the
    backend with ``xp.asarray(...)`` (or ``Tensor(...)``, which does it for you).

Every test also gets ``_restore_backend`` automatically: whatever backend a test selects, the next
test starts on the session's backend again.

The session's backend is NumPy unless the environment variable ``MINISSD_BACKEND`` says otherwise
(``MINISSD_BACKEND=cupy python -m pytest`` reruns the whole suite on the GPU; tests that do not ask
for ``xp`` then run on CuPy). The header of the pytest report names it.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from types import ModuleType

import numpy
import pytest

try:
    # backend.py reads MINISSD_BACKEND at import; a bad value or missing CuPy fails right here.
    import minissd
    from minissd import backend
except (ValueError, RuntimeError) as exc:  # pragma: no cover - depends on the environment
    raise pytest.UsageError(f"cannot start the minissd test suite: {exc}") from exc

SEED = 20160  # the ``rng`` fixture's seed (any fixed number would do)

#: The backend chosen for this pytest session (by MINISSD_BACKEND, default "numpy").
SESSION_BACKEND = backend.get_backend()


def _cupy_skip_reason() -> str | None:
    """Why the CuPy backend cannot run here, or None when it can."""
    if importlib.util.find_spec("cupy") is None:
        return "CuPy is not installed (pip install cupy-cuda12x, or cupy-cuda11x for CUDA 11)"
    if not backend.cupy_available():
        return "CuPy is installed but sees no usable CUDA GPU"
    return None


_CUPY_SKIP = _cupy_skip_reason()

BACKEND_PARAMS = [
    pytest.param("numpy", id="numpy"),
    pytest.param(
        "cupy",
        id="cupy",
        marks=[pytest.mark.gpu, pytest.mark.skipif(_CUPY_SKIP is not None, reason=str(_CUPY_SKIP))],
    ),
]


def pytest_report_header(config: pytest.Config) -> str:
    env = os.environ.get("MINISSD_BACKEND", "")
    cupy_note = "cupy: available" if _CUPY_SKIP is None else f"cupy: {_CUPY_SKIP}"
    return f"minissd {minissd.__version__}: backend {SESSION_BACKEND} (MINISSD_BACKEND={env!r}); {cupy_note}"


@pytest.fixture(autouse=True)
def _restore_backend() -> Iterator[None]:
    """Put the session's backend back after every test, even one that switched and then failed."""
    yield
    if backend.get_backend() != SESSION_BACKEND:
        backend.set_backend(SESSION_BACKEND)


@pytest.fixture(params=BACKEND_PARAMS)
def xp(request: pytest.FixtureRequest) -> Iterator[ModuleType]:
    """The array module of the backend under test (numpy, or cupy when a GPU is present)."""
    previous = backend.get_backend()
    backend.set_backend(request.param)
    try:
        yield backend.xp()
    finally:
        backend.set_backend(previous)


@pytest.fixture
def rng() -> numpy.random.Generator:
    """A fresh ``numpy.random.Generator`` seeded with ``SEED`` (host-side random numbers)."""
    return numpy.random.default_rng(SEED)
