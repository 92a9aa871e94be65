"""The test suite runs once per backend: nox sets GPUNET_BACKEND for each session.

Fixtures:
    xp: the array namespace of the backend under test (reset and seeded per test).
    tol: tolerances per dtype, in one place.
Markers: gpu (needs CuPy and a GPU), cudasim (needs NUMBA_ENABLE_CUDASIM=1, set before
numba is imported, as the nox session does), slow, crosscheck (needs PyTorch). The
example scripts (tests/test_examples*.py) run in the numpy session only.
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

from gpunet import backend

BACKEND = os.environ.get("GPUNET_BACKEND", "numpy")

TOLERANCES = {"float32": 1e-5, "float64": 1e-10}


def _cupy_problem() -> str | None:
    try:
        backend.set("cupy")
    except backend.BackendError as err:
        return str(err)
    finally:
        backend.set("numpy")
    return None


def pytest_report_header(config: pytest.Config) -> str:
    return f"gpunet backend under test: {BACKEND} (GPUNET_BACKEND)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    needs_gpu = BACKEND == "cupy" or any(item.get_closest_marker("gpu") for item in items)
    gpu_problem = _cupy_problem() if needs_gpu else None
    cudasim = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
    has_torch = importlib.util.find_spec("torch") is not None
    for item in items:
        if item.path.name.startswith("test_examples") and BACKEND != "numpy":
            item.add_marker(
                pytest.mark.skip(reason="examples run in the numpy session (tests-numpy)")
            )
        if gpu_problem and (BACKEND == "cupy" or item.get_closest_marker("gpu")):
            item.add_marker(pytest.mark.skip(reason=f"no usable GPU: {gpu_problem}"))
        if item.get_closest_marker("gpu") and BACKEND != "cupy":
            item.add_marker(pytest.mark.skip(reason="gpu test: run with GPUNET_BACKEND=cupy"))
        if item.get_closest_marker("cudasim") and not cudasim:
            item.add_marker(pytest.mark.skip(reason="cudasim test: run the nox session 'cudasim'"))
        if item.get_closest_marker("crosscheck") and not has_torch:
            item.add_marker(
                pytest.mark.skip(reason="crosscheck test: needs PyTorch (nox session 'crosscheck')")
            )


@pytest.fixture(autouse=True)
def _fresh_backend():
    """Each test starts on the backend under test, seeded with 0."""
    backend.set(BACKEND)
    backend.seed(0)
    yield
    backend.set(BACKEND)


@pytest.fixture
def xp():
    """The array namespace of the backend under test."""
    return backend.xp()


@pytest.fixture
def tol():
    """Tolerance by dtype name: ``tol["float32"]``."""
    return TOLERANCES


@pytest.fixture
def rng():
    """A NumPy generator for test data (host side, seeded)."""
    return np.random.default_rng(1234)
