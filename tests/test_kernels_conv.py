"""The convolution and pooling kernels against the array-API reference.

CPU kernels (NumPy) and CUDA kernels (CuPy) are compared with the reference ops on the
same backend for many random geometries (hypothesis), in float32 and float64. The CUDA
kernels also run under Numba's CUDA simulator: tests/test_cuda_kernels.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gpunet
from gpunet import backend
from gpunet.ops import conv as conv_ops
from gpunet.ops import pool as pool_ops

SETTINGS = settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
DTYPES = ["float32", "float64"]


def _kernel(op):
    found = backend.kernel(op, backend.xp())
    if found is None:
        pytest.skip(f"no {op} kernel on backend {backend.name()}")
    return found


@st.composite
def conv_geometries(draw, pooling=False):
    """(x shape, kernel, stride, padding, dilation) with the kernel fitting the input."""
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    if pooling:
        padding = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
        dilation = (1, 1)
    else:
        padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
        dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    extent = [dilation[a] * (kernel[a] - 1) + 1 - 2 * padding[a] for a in (0, 1)]
    h = draw(st.integers(max(1, extent[0]), max(1, extent[0]) + 6))
    w = draw(st.integers(max(1, extent[1]), max(1, extent[1]) + 6))
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 4)), h, w)
    return shape, kernel, stride, padding, dilation


def _array(rng, shape, dtype):
    return gpunet.asarray(rng.standard_normal(shape), dtype=dtype)


def _assert_close(actual, expected, dtype):
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(
        gpunet.to_numpy(actual), gpunet.to_numpy(expected), rtol=tol, atol=tol
    )


def _conv_both_paths(x, weight, bias, geometry, grad, monkeypatch, input_grad=True):
    """``conv2d`` forward and backward on the kernel path, then on the reference."""
    results = []
    for kernels_on in ("1", "0"):
        with monkeypatch.context() as patch:
            patch.setenv("GPUNET_KERNELS", kernels_on)
            workspace = {}
            y, cache = conv_ops.conv2d(x, weight, bias, *geometry, workspace=workspace)
            assert cache.fast == (kernels_on == "1")
            grads = conv_ops.conv2d_backward(grad, cache, weight, input_grad, workspace)
            results.append((y, *grads))
    return results


@pytest.mark.parametrize("dtype", DTYPES)
@SETTINGS
@given(geometry=conv_geometries(), channels=st.integers(1, 5), with_bias=st.booleans())
def test_conv2d_kernels_match_reference(dtype, geometry, channels, with_bias, rng, monkeypatch):
    _kernel("conv2d_forward")
    shape, kernel, *rest = geometry
    x = _array(rng, shape, dtype)
    weight = _array(rng, (channels, shape[1], *kernel), dtype)
    bias = _array(rng, (channels,), dtype) if with_bias else None
    out_hw = conv_ops.output_hw(shape[2:], kernel, *rest)
    grad = _array(rng, (shape[0], channels, *out_hw), dtype)
    fast, reference = _conv_both_paths(x, weight, bias, rest, grad, monkeypatch)
    for actual, expected in zip(fast, reference, strict=True):
        _assert_close(actual, expected, dtype)


@pytest.mark.parametrize("input_grad", [True, False])
def test_conv2d_kernels_over_many_blocks(input_grad, rng, monkeypatch):
    """A batch split into several blocks of images (the last one shorter) on the CPU."""
    from gpunet.kernels import conv as conv_kernels

    _kernel("conv2d_forward")
    monkeypatch.setattr(conv_kernels, "BLOCK_BYTES", 3 * 6 * 6 * 3 * 3 * 2 * 8)  # 3 images
    geometry = ((1, 1), (1, 1), (1, 1))
    x = _array(rng, (8, 2, 6, 6), "float64")
    weight, bias = _array(rng, (4, 2, 3, 3), "float64"), _array(rng, (4,), "float64")
    grad = _array(rng, (8, 4, 6, 6), "float64")
    fast, reference = _conv_both_paths(x, weight, bias, geometry, grad, monkeypatch, input_grad)
    assert (fast[1] is None) == (not input_grad)
    for actual, expected in zip(fast, reference, strict=True):
        if expected is not None and actual is not None:
            _assert_close(actual, expected, "float64")
    if not input_grad:
        assert reference[1] is None


@pytest.mark.parametrize("dtype", DTYPES)
@SETTINGS
@given(geometry=conv_geometries(pooling=True))
def test_pool_kernels_match_reference(dtype, geometry, rng, monkeypatch):
    shape, kernel, stride, padding, _ = geometry
    _kernel("max_pool2d_forward")
    x = _array(rng, shape, dtype)
    y, cache = pool_ops.max_pool2d(x, kernel, stride, padding)
    avg, avg_cache = pool_ops.avg_pool2d(x, kernel, stride, padding)
    grad = _array(rng, tuple(y.shape), dtype)
    dx, avg_dx = (
        pool_ops.max_pool2d_backward(grad, cache),
        pool_ops.avg_pool2d_backward(grad, avg_cache),
    )
    assert cache.fast and avg_cache.fast
    with monkeypatch.context() as patch:
        patch.setenv("GPUNET_KERNELS", "0")
        y_ref, cache_ref = pool_ops.max_pool2d(x, kernel, stride, padding)
        avg_ref, avg_cache_ref = pool_ops.avg_pool2d(x, kernel, stride, padding)
        dx_ref = pool_ops.max_pool2d_backward(grad, cache_ref)
        avg_dx_ref = pool_ops.avg_pool2d_backward(grad, avg_cache_ref)
    np.testing.assert_array_equal(gpunet.to_numpy(y), gpunet.to_numpy(y_ref))
    np.testing.assert_array_equal(gpunet.to_numpy(cache.argmax), gpunet.to_numpy(cache_ref.argmax))
    _assert_close(dx, dx_ref, dtype)
    _assert_close(avg, avg_ref, dtype)
    _assert_close(avg_dx, avg_dx_ref, dtype)


def test_threaded_kernels_match_reference(rng, monkeypatch):
    """The pooling kernels split over two threads, forced on a small input."""
    from gpunet.kernels import _parallel

    _kernel("max_pool2d_forward")
    monkeypatch.setattr(_parallel, "MIN_WORK", 1)
    monkeypatch.setattr(_parallel, "threads", lambda: 2)
    x = _array(rng, (2, 3, 12, 16), "float32")
    y, cache = pool_ops.max_pool2d(x, (3, 2), (2, 2), (1, 0))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GPUNET_KERNELS", "0")
        y_ref, cache_ref = pool_ops.max_pool2d(x, (3, 2), (2, 2), (1, 0))
        dx_ref = pool_ops.max_pool2d_backward(y, cache_ref)
    np.testing.assert_array_equal(gpunet.to_numpy(y), gpunet.to_numpy(y_ref))
    _assert_close(pool_ops.max_pool2d_backward(y, cache), dx_ref, "float32")


@pytest.mark.skipif(backend.name() != "numpy", reason="the CPU kernels take NumPy arrays")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pool_2x2_fast_path_equals_the_general_kernel(dtype):
    from gpunet.kernels import pool

    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 5, 6, 8)).astype(dtype)
    x[0, 0, :2, :2] = 1.0  # a tie: the first tap wins on both paths
    y, argmax = pool.max_pool2d_forward_cpu(x, (2, 2), (2, 2), (0, 0))
    y_general, argmax_general = np.empty_like(y), np.empty_like(argmax)
    planes = (x.reshape(15, 6, 8), y_general.reshape(15, 3, 4), argmax_general.reshape(15, 3, 4))
    pool._max_forward_cpu(*planes, 2, 2, 2, 2, 0, 0)
    np.testing.assert_array_equal(y, y_general)
    np.testing.assert_array_equal(argmax, argmax_general)
    assert argmax[0, 0, 0, 0] == 0
    grad = rng.standard_normal(y.shape).astype(dtype)
    dx = pool.max_pool2d_backward_cpu(grad, argmax, x.shape, (2, 2), (2, 2), (0, 0))
    dx_general = np.empty_like(x)
    arrays = (grad.reshape(15, 3, 4), argmax.reshape(15, 3, 4), dx_general.reshape(15, 6, 8))
    pool._max_backward_cpu(*arrays, 2, 2, 2, 0, 0)
    np.testing.assert_array_equal(dx, dx_general)


def test_conv2d_kernel_promotes_mixed_dtypes_as_the_reference(rng, monkeypatch):
    """float32 input into a float64 layer: a float64 result on both paths, equal to 1e-12."""
    _kernel("conv2d_forward")
    x = _array(rng, (3, 2, 5, 5), "float32")
    weight, bias = _array(rng, (4, 2, 3, 3), "float64"), _array(rng, (4,), "float64")
    grad = _array(rng, (3, 4, 5, 5), "float64")
    fast, reference = _conv_both_paths(x, weight, bias, ((1, 1), (1, 1), (1, 1)), grad, monkeypatch)
    for actual, expected in zip(fast, reference, strict=True):
        assert actual.dtype == expected.dtype
        _assert_close(actual, expected, "float64")


@pytest.mark.skipif(backend.name() != "numpy", reason="the CPU kernels take NumPy arrays")
def test_max_pool_kernels_let_the_first_nan_win_as_the_reference_does(monkeypatch):
    from gpunet.kernels import pool

    x = np.arange(2 * 3 * 4 * 6, dtype=np.float32).reshape(2, 3, 4, 6)
    x[0, 0, 0, 1] = x[0, 0, 1, 0] = np.nan  # two NaNs in one window: the first wins
    x[1, 2, 2, 2], x[1, 2, 3, 3] = np.inf, -np.inf  # a sum of NaN without a NaN
    for kernel, stride in (((2, 2), (2, 2)), ((3, 2), (1, 2))):
        y, argmax = pool.max_pool2d_forward_cpu(x, kernel, stride, (0, 0))
        with monkeypatch.context() as patch:
            patch.setenv("GPUNET_KERNELS", "0")
            y_ref, cache = pool_ops.max_pool2d(x, kernel, stride, (0, 0))
        np.testing.assert_array_equal(y, gpunet.to_numpy(y_ref))
        np.testing.assert_array_equal(argmax, gpunet.to_numpy(cache.argmax))
    assert np.isnan(y[0, 0, 0, 0])


@pytest.mark.skipif(backend.name() != "numpy", reason="the CPU kernels take NumPy arrays")
@pytest.mark.parametrize("pool", [None, False, True], ids=["conv", "conv-relu", "conv-relu-pool"])
def test_conv_kernels_split_over_threads_give_the_numbers_of_one(pool, rng, monkeypatch):
    """Images split into one run per thread (5 images: runs of 2 and 3, in blocks of at
    most 2): the numbers of one thread, to the rounding of the weight gradient's sums."""
    from gpunet.kernels import _parallel, conv, conv_block

    x = rng.standard_normal((5, 3, 8, 8)).astype(np.float32)
    weight = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    bias = rng.standard_normal(4).astype(np.float32)
    geometry = ((1, 1), (1, 1), (1, 1))
    monkeypatch.setattr(conv, "BLOCK_BYTES", 2 * 64 * 27 * 4)

    def run():
        if pool is None:
            y, saved = conv.conv2d_forward_cpu(x, weight, bias, *geometry, {})
            backward = conv.conv2d_backward_cpu
        else:
            y, saved = conv_block.conv2d_relu_forward_cpu(x, weight, bias, *geometry, pool=pool)
            backward = conv_block.conv2d_relu_backward_cpu
        grads = backward(np.cos(y), saved, weight, x.shape, *geometry, True, {})
        return [y, *grads]

    monkeypatch.setattr(_parallel, "threads", lambda: 1)
    one = run()
    monkeypatch.setattr(_parallel, "threads", lambda: 2)
    monkeypatch.setattr(_parallel, "MIN_WORK", 1)
    seen = []
    real_run = _parallel.run
    monkeypatch.setattr(
        _parallel,
        "run",
        lambda parts, task, blas=True: (seen.append(parts), real_run(parts, task, blas)),
    )
    two = run()
    assert seen and set(seen) == {2}
    for got, expected in zip(two, one, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-5)
