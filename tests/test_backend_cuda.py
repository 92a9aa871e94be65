"""Choosing the cupy backend where the CUDA stack is broken: one clear error each, at the
point of choosing, and the backend in use stays as it was (never a quiet CPU fallback).

CuPy and numba.cuda are replaced by stand-ins that answer as the real ones do on such
machines, so these run without a GPU.
"""

from __future__ import annotations

import sys
import types

import numba
import pytest

from gpunet import backend


class _Runtime:
    def __init__(self, devices, driver, runtime=12090):
        self.devices, self.driver, self.runtime = devices, driver, runtime

    def getDeviceCount(self):  # noqa: N802 - CuPy's name
        if isinstance(self.devices, Exception):
            raise self.devices
        return self.devices

    def driverGetVersion(self):  # noqa: N802
        return self.driver

    def runtimeGetVersion(self):  # noqa: N802
        return self.runtime


def _fake_cupy(devices=1, driver=12040):
    cupy = types.ModuleType("cupy")
    cupy.cuda = types.SimpleNamespace(
        runtime=_Runtime(devices, driver),
        Device=lambda index: types.SimpleNamespace(use=lambda: None),
    )
    return cupy


def _fake_numba_cuda(available=True, version=(12, 9), error=None):
    cuda = types.ModuleType("numba.cuda")
    cuda.is_available = lambda: available
    cuda.cuda_error = lambda: error
    cuda.runtime = types.SimpleNamespace(get_version=lambda: version)
    return cuda


@pytest.fixture
def stack(monkeypatch):
    """Installs a stand-in CuPy (and numba.cuda); the loaded array-API namespace is a stub."""
    monkeypatch.delenv("GPUNET_DEVICE", raising=False)
    monkeypatch.delenv("GPUNET_KERNELS", raising=False)
    monkeypatch.setattr(backend._state, "device_index", None)
    import array_api_compat

    stub = types.ModuleType("array_api_compat.cupy")
    monkeypatch.setitem(sys.modules, "array_api_compat.cupy", stub)
    monkeypatch.setattr(array_api_compat, "cupy", stub, raising=False)

    def install(cupy, cuda=None):
        monkeypatch.setitem(sys.modules, "cupy", cupy)
        monkeypatch.delattr(numba, "cuda", raising=False)
        monkeypatch.setitem(sys.modules, "numba.cuda", cuda)  # None: it does not import
        return stub

    return install


def _refused(match):
    before = backend.name()
    with pytest.raises(backend.BackendError, match=match):
        backend.set("cupy")
    assert backend.name() == before  # nothing switched, nothing fell back


def test_no_driver_says_so(stack):
    error = RuntimeError("cudaErrorInsufficientDriver: CUDA driver version is insufficient")
    stack(_fake_cupy(devices=error, driver=0))
    _refused(r"no CUDA GPU is usable: no NVIDIA driver is loaded \(cudaErrorInsufficientDriver")


def test_a_driver_too_old_for_cupy_gives_both_versions(stack):
    error = RuntimeError("cudaErrorInsufficientDriver: CUDA driver version is insufficient")
    stack(_fake_cupy(devices=error, driver=11080))
    _refused(r"the driver supports CUDA 11\.8, CuPy's runtime is CUDA 12\.9")


def test_a_gpu_index_that_does_not_exist(stack, monkeypatch):
    stack(_fake_cupy(devices=2), _fake_numba_cuda())
    monkeypatch.setenv("GPUNET_DEVICE", "2")
    _refused(r"GPUNET_DEVICE=2 but 2 GPU\(s\) are visible \(indices 0\.\.1\)")
    with pytest.raises(backend.BackendError, match=r"set_device\(5\): 2 GPU\(s\) are visible"):
        backend.set_device(5)


def test_numba_cuda_missing(stack):
    stack(_fake_cupy(), None)
    _refused(r"the CUDA kernels need numba\.cuda, which does not import here.*GPUNET_KERNELS=0")


def test_numba_cuda_that_does_not_see_the_gpu(stack):
    cuda = _fake_numba_cuda(available=False, error="CUDA driver library cannot be found\nmore")
    stack(_fake_cupy(), cuda)
    _refused(
        r"numba-cuda does not see the GPU that CuPy uses \(CUDA driver library cannot be found\)"
    )


def test_numba_cuda_built_for_a_newer_cuda_than_the_driver(stack):
    stack(_fake_cupy(driver=12040), _fake_numba_cuda(version=(13, 0)))
    _refused(
        r"numba-cuda is built for CUDA 13 but the driver supports CUDA 12\.4 \(CuPy: CUDA "
        r"12\.9\).*pip install 'gpunet\[cuda12\]'"
    )


def test_a_working_stack_loads_and_kernels_off_skip_the_numba_check(stack, monkeypatch):
    stub = stack(_fake_cupy(driver=12040), _fake_numba_cuda(version=(12, 9)))
    assert backend._load_cupy() is stub
    stack(_fake_cupy(driver=12040), None)
    monkeypatch.setenv("GPUNET_KERNELS", "0")
    assert backend._load_cupy() is stub
