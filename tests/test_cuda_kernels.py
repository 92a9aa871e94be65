"""Every CUDA kernel under Numba's CUDA simulator, against the reference ops.

The ``*_cuda`` wrappers take NumPy arrays under the simulator (``NUMBA_ENABLE_CUDASIM=1``,
the nox session ``cudasim``), so each kernel runs here as it would on a GPU, in float32
and float64, on odd shapes, with NaN and infinities, in both index builds (32- and
64-bit division). Every launch is checked against the argument types its family
declares (``cuda_signatures``), the ones tests/test_cuda_compile.py compiles to PTX.
Whole training steps count their launches. Shapes are tiny: the simulator runs each
thread in Python.
"""

from __future__ import annotations

import collections
import warnings

import numba
import numpy as np
import pytest
from gpunet.kernels import _cuda

import gpunet
from gpunet import backend
from gpunet.ops import conv as conv_ops
from gpunet.ops import pool as pool_ops
from tests.test_kernels_optim import CONFIGS, check, expected_outputs, make_arrays

DTYPES = ["float32", "float64"]
TOLERANCE = {"float32": 1e-5, "float64": 1e-12}


def _families():
    """(family module, kernel name) of every CUDA kernel, by the kernel object's id."""
    return {
        id(kernel): (family, name)
        for family in _cuda.cuda_families().values()
        for name, kernel in family.cuda_kernels().items()
    }


@pytest.fixture(autouse=True)
def _launches_have_their_declared_types(request):
    """Each kernel launched in a simulator test gets exactly the argument types that its
    family's ``cuda_signatures`` declares for the arrays' float dtype."""
    if request.node.get_closest_marker("cudasim") is None:
        yield
        return
    with _cuda.recording_launches() as calls:
        yield
    kernels = _families()
    for kernel, args in calls:
        family, name = kernels[id(kernel)]
        found = tuple(numba.typeof(arg) for arg in args)
        floats = [t.dtype for t in found if isinstance(t, numba.types.Array)]
        dtype = next(t for t in floats if isinstance(t, numba.types.Float))
        assert found == family.cuda_signatures(dtype)[name], name


def _close(actual, expected, dtype):
    np.testing.assert_allclose(actual, expected, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])


def _with_specials(rng, shape, dtype):
    """Random data with a NaN, +inf, -inf and a tie in it."""
    x = rng.standard_normal(shape).astype(dtype)
    flat = x.reshape(-1)
    flat[1], flat[-1], flat[flat.size // 2] = np.nan, np.inf, -np.inf
    flat[2] = flat[3] = 2.5
    return x


# --------------------------------------------------------------------------- convolution

CONV_CASES = {  # x shape, kernel, stride, padding, dilation
    "pad": ((2, 3, 5, 4), (2, 3), (1, 1), (1, 0), (1, 1)),
    "stride-dilation": ((1, 2, 7, 5), (3, 2), (2, 1), (1, 1), (1, 2)),
    "pointwise-strided": ((3, 1, 4, 6), (1, 1), (2, 3), (0, 0), (1, 1)),
}


def _conv_both(x, weight, bias, geometry, input_grad, rng):
    from gpunet.kernels import conv as kernels

    y, col = kernels.conv2d_forward_cuda(x, weight, bias, *geometry)
    y_ref, col_ref = conv_ops._reference_forward(x, weight, bias, *geometry)
    grad = rng.standard_normal(y.shape).astype(y.dtype)
    fast = kernels.conv2d_backward_cuda(grad, col, weight, x.shape, *geometry, input_grad)
    cache = conv_ops.ConvCache(col_ref, x.shape, *geometry, fast=False)
    reference = conv_ops.conv2d_backward(grad, cache, weight, input_grad)
    return (y, col, *fast), (y_ref, col_ref, *reference)


@pytest.mark.cudasim
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", list(CONV_CASES))
def test_conv2d_kernels_match_the_reference(case, dtype, rng):
    """im2col, the NCHW moves with the bias, col2im: forward and backward, NaN and
    infinities carried through as in the reference."""
    shape, kernel, *geometry = CONV_CASES[case]
    x = _with_specials(rng, shape, dtype)
    weight = rng.standard_normal((3, shape[1], *kernel)).astype(dtype)
    bias = rng.standard_normal(3).astype(dtype)
    fast, reference = _conv_both(x, weight, bias, geometry, True, rng)
    np.testing.assert_array_equal(fast[1], reference[1])  # the column matrix, NaN and all
    for actual, expected in zip(fast, reference, strict=True):
        assert actual.dtype == np.dtype(dtype)
        _close(actual, expected, dtype)


@pytest.mark.cudasim
@pytest.mark.parametrize(("input_grad", "with_bias"), [(True, False), (False, True)])
def test_conv2d_promotes_mixed_dtypes_and_skips_the_input_gradient(input_grad, with_bias, rng):
    """A float32 input into float64 weights computes in float64, as the reference (whose
    column matrix stays float32)."""
    geometry = ((2, 1), (1, 0), (1, 2))
    x = rng.standard_normal((2, 2, 4, 5)).astype("float32")
    weight = rng.standard_normal((3, 2, 2, 2))
    bias = rng.standard_normal(3) if with_bias else None
    fast, reference = _conv_both(x, weight, bias, geometry, input_grad, rng)
    assert (fast[2] is None) == (not input_grad)
    for actual, expected in zip(fast, reference, strict=True):
        if expected is None:
            assert actual is None
        else:
            assert actual.dtype == np.float64
            _close(actual, expected, "float64")


# --------------------------------------------------------------------------- pooling

POOL_CASES = {  # x shape, kernel, stride, padding
    "padded": ((1, 2, 5, 4), (3, 2), (2, 1), (1, 1)),
    "tiles-2x2": ((2, 1, 4, 6), (2, 2), (2, 2), (0, 0)),
    "odd": ((1, 3, 7, 3), (3, 3), (3, 2), (1, 1)),
}


def _pool_all(x, grad, geometry):
    """Max and average pooling, forward and backward, on the current kernel setting."""
    y, cache = pool_ops.max_pool2d(x, *geometry)
    avg, avg_cache = pool_ops.avg_pool2d(x, *geometry)
    dx = pool_ops.max_pool2d_backward(grad, cache)
    avg_dx = pool_ops.avg_pool2d_backward(grad, avg_cache)
    return y, np.asarray(cache.argmax), dx, avg, avg_dx


@pytest.mark.cudasim
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", list(POOL_CASES))
def test_pool_kernels_match_the_reference(case, dtype, rng, cuda_on_numpy, monkeypatch):
    """A NaN in a window wins it, ties go to the first tap, infinities pass through."""
    shape, *geometry = POOL_CASES[case]
    x = _with_specials(rng, shape, dtype)
    out_hw = conv_ops.output_hw(shape[2:], *geometry, (1, 1))
    grad = rng.standard_normal((*shape[:2], *out_hw)).astype(dtype)
    with _cuda.counting_launches() as launched:
        fast = _pool_all(x, grad, geometry)
    assert sorted(launched) == ["avg_backward", "avg_forward", "max_backward", "max_forward"]
    monkeypatch.setenv("GPUNET_KERNELS", "0")
    reference = _pool_all(x, grad, geometry)
    assert np.isnan(reference[0]).any()
    np.testing.assert_array_equal(fast[0], reference[0])  # max: NaN where NaN won
    np.testing.assert_array_equal(fast[1], reference[1])  # the winning taps
    for actual, expected in zip(fast[2:], reference[2:], strict=True):
        assert actual.dtype == np.dtype(dtype)
        _close(actual, expected, dtype)


@pytest.mark.cudasim
def test_the_64_bit_index_builds_give_the_same_results(rng, monkeypatch):
    """Above ``INDEX32_LIMIT`` elements the ``_int64`` builds run; forced here on tiny arrays."""
    from gpunet.kernels import conv, pool

    shape, kernel, *geometry = CONV_CASES["stride-dilation"]
    x = _with_specials(rng, shape, "float32")
    weight = rng.standard_normal((2, shape[1], *kernel)).astype("float32")
    pooled = pool.max_pool2d_forward_cuda(x, (3, 2), (2, 1), (1, 1))
    narrow = conv.conv2d_forward_cuda(x, weight, None, *geometry)
    monkeypatch.setattr(_cuda, "INDEX32_LIMIT", 1)
    with _cuda.recording_launches() as calls:
        wide = conv.conv2d_forward_cuda(x, weight, None, *geometry)
        wide_pooled = pool.max_pool2d_forward_cuda(x, (3, 2), (2, 1), (1, 1))
    names = {id(k): name for name, k in {**conv.cuda_kernels(), **pool.cuda_kernels()}.items()}
    assert [names[id(kernel)] for kernel, _ in calls] == [
        "im2col_int64",
        "conv_output_int64",
        "max_forward_int64",
    ]
    for actual, expected in zip((*wide, *wide_pooled), (*narrow, *pooled), strict=True):
        np.testing.assert_array_equal(actual, expected)


# --------------------------------------------------------------------------- optimizers


@pytest.mark.cudasim
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("rule", "n_state", "hyper"), CONFIGS, ids=lambda v: str(v)[:12])
def test_optimizer_kernels_match_the_reference(rule, n_state, hyper, dtype, rng):
    from gpunet.kernels import optim as kernels

    check(rule, hyper, getattr(kernels, f"{rule}_cuda"), rng, (3, 7), dtype)


@pytest.mark.parametrize("target", [pytest.param("cuda", marks=pytest.mark.cudasim), "cpu"])
@pytest.mark.parametrize("rule", ["sgd", "adagrad", "rmsprop", "adam"])
def test_optimizer_kernels_carry_nan_and_inf_as_the_reference(rule, target, rng):
    """A NaN or infinite gradient element spreads through the parameter and the state as
    in the reference (the rules' scalar math is shared by both targets)."""
    from gpunet.kernels import optim as kernels

    if target == "cpu" and backend.name() != "numpy":
        pytest.skip("the CPU kernels take NumPy arrays")
    _, n_state, hyper = next(config for config in CONFIGS[::-1] if config[0] == rule)
    param, grad, state = make_arrays(rng, (2, 5), n_state, "float32")
    if rule == "adam":
        state = [state[1], state[0], state[2]]  # exp_avg, exp_avg_sq, max_exp_avg_sq
    grad[0, 0], grad[1, 1] = np.nan, np.inf
    with np.errstate(invalid="ignore"):
        expected = expected_outputs(rule, param, grad, state, hyper)
        getattr(kernels, f"{rule}_{target}")(param, grad, *state, **hyper)
    assert np.isnan(expected[0]).any()
    for actual, wanted in zip((param, *state), expected, strict=True):
        np.testing.assert_array_equal(np.isnan(actual), np.isnan(wanted))
        _close(actual, wanted, "float32")


# --------------------------------------------------------------------------- launch helper


class _WarningKernel:
    """Stands in for a Numba kernel: warns as Numba does for a small grid."""

    __name__ = "warning_kernel"

    def __init__(self, message):
        self.message, self.calls = message, []

    def __getitem__(self, configuration):
        def run(*args):
            self.calls.append((configuration, args))
            warnings.warn(self.message, numba.NumbaPerformanceWarning, stacklevel=2)

        return run


def test_launch_silences_only_the_low_occupancy_warning():
    quiet = _WarningKernel("Grid size 1 will likely result in GPU under-utilization")
    with _cuda.counting_launches() as launched:
        _cuda.launch(quiet, 3, np.zeros(3))
    assert quiet.calls[0][0] == (1, _cuda.THREADS_PER_BLOCK, 0)
    assert launched == ["warning_kernel"]
    assert _cuda.array_library(np.zeros(2), 1.0) is np
    loud = _WarningKernel("something else")
    with pytest.warns(numba.NumbaPerformanceWarning, match="something else"):
        _cuda.launch(loud, 600, np.zeros(3))
    assert loud.calls[0][0] == (3, _cuda.THREADS_PER_BLOCK, 0)


def test_launch_indexed_picks_the_64_bit_build_by_size(monkeypatch):
    narrow, wide = _WarningKernel("under-utilization"), _WarningKernel("under-utilization")
    kernels = {"k": narrow, "k" + _cuda.WIDE: wide}
    monkeypatch.setattr(_cuda, "INDEX32_LIMIT", 10)
    _cuda.launch_indexed(kernels, "k", 9, np.zeros(9))
    _cuda.launch_indexed(kernels, "k", 9, np.zeros(10))
    _cuda.launch_indexed(kernels, "k", 10, np.zeros(1))
    assert (len(narrow.calls), len(wide.calls)) == (1, 2)


def test_index_division_in_32_and_64_bits():
    for a, b in [(0, 1), (7, 3), (2**31 + 5, 2**16), (2**32 - 1, 7)]:
        assert _cuda.divmod32(a, b) == divmod(a, b)
    assert _cuda.divmod64(2**40 + 3, 5) == divmod(2**40 + 3, 5)
    _, unravel, output_coord = _cuda.index_math(False)
    assert unravel(((2 * 3 + 1) * 4 + 3) * 5 + 4, 3, 4, 5) == (2, 1, 3, 4)
    assert output_coord(4, 1, 2, 1, 1, 3) == 2  # (4 + 1 - 1) / 2
    assert output_coord(5, 1, 2, 1, 1, 3) == -1  # (5 + 1 - 1) / 2 is not whole
    assert output_coord(6, 1, 2, 1, 1, 3) == -1  # window 3 of 3 does not exist


# --------------------------------------------------------------------------- training steps


@pytest.fixture
def cuda_on_numpy(monkeypatch):
    """Ops on NumPy arrays take their CUDA kernels (run by the simulator), not the CPU ones."""
    from gpunet import kernels

    if backend.name() != "numpy":
        pytest.skip("the simulator runs the CUDA kernels on NumPy arrays")
    target_of = kernels.target_of
    monkeypatch.setattr(
        kernels, "target_of", lambda xp: "cuda" if target_of(xp) == "cpu" else target_of(xp)
    )
    monkeypatch.setattr(backend, "_KERNEL_CACHE", {})


def _w1_tiny():
    """W1's model (benchmarks/w1_mlp.py) with tiny widths."""
    from gpunet.nn import Dense, ReLU, Sequential

    model = Sequential(Dense(12, 8), ReLU(), Dense(8, 6), ReLU(), Dense(6, 4))
    model[0].input_grad = False
    return model, (5, 12)


def _w2_tiny():
    """W2's CNN (benchmarks/w2_cnn.py) with tiny widths and images."""
    from gpunet.nn import Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential

    first = Conv2D(1, 2, 3, padding=1)
    first.input_grad = False
    model = Sequential(
        first, ReLU(), MaxPool2D(2),
        Conv2D(2, 3, 3, padding=1), ReLU(), MaxPool2D(2),
        Flatten(), Dense(12, 5), ReLU(), Dense(5, 4),
    )  # fmt: skip
    return model, (2, 1, 8, 8)


def _step(build, rng):
    """One Adam training step in float64; returns the parameters after it."""
    from gpunet.losses import CrossEntropy
    from gpunet.optim import Adam

    gpunet.seed(0)
    model, x_shape = build()
    model.astype("float64")
    loss_fn, optimizer = CrossEntropy(), Adam(model.parameters(), lr=1e-2)
    x = gpunet.asarray(rng.standard_normal(x_shape), dtype="float64")
    y = gpunet.asarray(rng.integers(0, 4, x_shape[0]))
    loss_fn(model(x), y)
    optimizer.zero_grad()
    model.backward(loss_fn.backward())
    optimizer.step()
    return [np.array(p.data) for p in model.parameters()]


STEP_LAUNCHES = {
    "W1": (_w1_tiny, {"adam": 6}),
    "W2": (
        _w2_tiny,
        {
            "im2col": 2,
            "conv_output": 2,
            "max_forward": 2,
            "max_backward": 2,
            "conv_grad_output": 2,
            "col2im": 1,  # the first convolution computes no input gradient
            "adam": 8,
        },
    ),
}


@pytest.mark.cudasim
@pytest.mark.parametrize("workload", list(STEP_LAUNCHES))
def test_training_step_launch_count(workload, cuda_on_numpy, monkeypatch):
    """The kernels one training step launches, by name: a change that adds launches to
    a step shows here. The step's result equals the reference path's."""
    build, expected = STEP_LAUNCHES[workload]
    with _cuda.counting_launches() as launched:
        fast = _step(build, np.random.default_rng(0))
    assert collections.Counter(launched) == expected
    monkeypatch.setenv("GPUNET_KERNELS", "0")
    reference = _step(build, np.random.default_rng(0))
    for actual, wanted in zip(fast, reference, strict=True):
        _close(actual, wanted, "float64")
