"""Every CUDA kernel compiles to PTX, for float32 and float64, with or without a GPU.

The simulator runs the kernels as Python, so it cannot catch what only the CUDA compiler
rejects (the CUDA target built into numba 0.66+ fails on a two-argument ``max``, for
one; numba-cuda 0.30 does not). This test types and lowers each kernel for compute
capability 9.0. Without a GPU, the one driver query on that path (the current device's
compute capability, asked when an ``@njit`` helper is compiled as a device function) is
answered with 9.0."""

from __future__ import annotations

import os

import pytest

pytestmark = [
    pytest.mark.skipif(
        os.environ.get("NUMBA_ENABLE_CUDASIM") == "1",
        reason="compiles real PTX; the simulator session runs the kernels instead",
    ),
    pytest.mark.skipif(
        os.environ.get("GPUNET_BACKEND", "numpy") not in ("numpy", "cupy"),
        reason="the kernels are compiled once, in the numpy (or cupy) session",
    ),
]

CAPABILITY = (9, 0)


class _Device:
    compute_capability = CAPABILITY


@pytest.fixture(scope="module")
def cuda():
    cuda = pytest.importorskip("numba.cuda")
    with pytest.MonkeyPatch.context() as patch:
        if not cuda.is_available():
            dispatcher = pytest.importorskip("numba.cuda.dispatcher")
            if not hasattr(dispatcher, "get_current_device"):
                pytest.skip("this numba.cuda asks the driver elsewhere: run it on a GPU")
            patch.setattr(dispatcher, "get_current_device", _Device)
        yield cuda


def _kernels():
    """Every CUDA kernel of ``kernels/``, by name."""
    from gpunet.kernels import conv, optim, pool, recurrent_cuda

    found = dict(recurrent_cuda.cuda_kernels())
    found.update(optim.cuda_kernels())
    found.update(conv.cuda_kernels())
    found.update(pool.cuda_kernels())
    return found


def _signatures(dtype):
    from gpunet.kernels import recurrent_cuda
    from numba import types

    i64 = types.int64
    v, m, t3, t4 = dtype[::1], dtype[:, ::1], dtype[:, :, ::1], dtype[:, :, :, ::1]
    taps = types.int32[:, :, :, ::1]
    return {
        **recurrent_cuda.cuda_signatures(dtype),
        "sgd": (v, v, v, v),
        "adagrad": (v, v, v, v),
        "rmsprop": (v, v, v, v, v, v),
        "adam": (v, v, v, v, v, v),
        "max_forward": (t4, t4, taps) + (i64,) * 6,
        "max_backward": (t4, taps, t4) + (i64,) * 6,
        "avg_forward": (t4, t4) + (i64,) * 6,
        "avg_backward": (t4, t4) + (i64,) * 6,
        "im2col": (t4, m) + (i64,) * 10,
        "col2im": (m, t4) + (i64,) * 10,
        "conv_output": (m, v, t3),
        "conv_grad_output": (t3, m),
    }


def test_every_kernel_has_a_signature_here(cuda):
    from numba import types

    assert sorted(_kernels()) == sorted(_signatures(types.float32))


@pytest.mark.parametrize("dtype_name", ["float32", "float64"])
def test_every_kernel_compiles_to_ptx(cuda, dtype_name):
    from numba import types

    dtype = getattr(types, dtype_name)
    signatures = _signatures(dtype)
    failures = {}
    for name, kernel in sorted(_kernels().items()):
        try:
            ptx, _ = cuda.compile_ptx(kernel.py_func, signatures[name], cc=CAPABILITY)
        except Exception as err:  # noqa: BLE001 - each failure is reported by name
            failures[name] = f"{type(err).__name__}: {str(err).splitlines()[0]}"
            continue
        assert ".entry" in ptx, name
    assert failures == {}
