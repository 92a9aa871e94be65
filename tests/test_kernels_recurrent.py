"""The CPU sequence kernels against the array-API reference path (the oracle)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading

import numba
import numpy as np
import pytest
from gpunet.kernels import _parallel, recurrent_cells, recurrent_cpu

from gpunet import backend
from gpunet.ops import bptt, recurrent

# The kernels take NumPy arrays, so they are checked once, in the NumPy session.
pytestmark = pytest.mark.skipif(
    os.environ.get("GPUNET_BACKEND", "numpy") != "numpy",
    reason="kernel parity runs in the numpy session",
)

TOLERANCE = {"float32": 1e-5, "float64": 1e-12}
SPECS = list(recurrent.SPECS.values())
SPEC_IDS = list(recurrent.SPECS)


def sequence_case(spec, steps, n_batch, hidden, dtype, rng, scale=1.0, features=3):
    """Random inputs of a forward and a backward pass over a sequence, as NumPy arrays."""
    width = spec.gates * hidden

    def draw(*shape, factor=1.0):
        return (factor * scale * rng.standard_normal(shape)).astype(dtype)

    return {
        "x": draw(steps, n_batch, features),
        "weight_ih": draw(features, width, factor=1 / np.sqrt(features)),
        "weight_hh": draw(hidden, width, factor=0.8 / np.sqrt(hidden)),  # contracting
        "b_ih": draw(width),
        "b_hh": draw(width),
        "h0": draw(n_batch, hidden),
        "c0": draw(n_batch, hidden) if spec.cell_state else None,
        "grad_states": draw(steps, n_batch, hidden),
        "grad_h": draw(n_batch, hidden),
        "grad_c": draw(n_batch, hidden) if spec.cell_state else None,
    }


def run_sequence(spec, case, with_grad_states=True):
    """Forward and backward through ``bptt``: every array they produce, as NumPy arrays."""
    a = case
    weights = (a["weight_ih"], a["weight_hh"], a["b_ih"], a["b_hh"])
    cache = bptt.sequence_forward(spec, a["x"], *weights, a["h0"], a["c0"])
    grad_states = a["grad_states"] if with_grad_states else None
    grads = bptt.sequence_backward(cache, a["weight_hh"], grad_states, a["grad_h"], a["grad_c"])
    arrays = {
        "states": cache.states,
        "cells": cache.cells,
        "saved": cache.saved,
        "rows": cache.rows,
        "d_xw": grads.xw,
        "d_weight_ih": grads.weight_ih,
        "d_weight_hh": grads.weight_hh,
        "d_b_ih": grads.b_ih,
        "d_b_hh": grads.b_hh,
        "d_h0": grads.h0,
        "d_c0": grads.c0,
    }
    return {k: np.array(backend.to_numpy(v), copy=True) for k, v in arrays.items() if v is not None}


def assert_close(got, expected, dtype):
    """Each array to the dtype's tolerance, relative to its largest element where that is
    above 1 (a weight gradient sums many terms: its rounding scales with theirs)."""
    assert sorted(got) == sorted(expected)
    for name, value in expected.items():
        assert got[name].dtype == np.dtype(dtype), name
        tolerance = TOLERANCE[dtype]
        scale = max(1.0, float(np.max(np.abs(value), initial=0.0)))
        np.testing.assert_allclose(
            got[name], value, rtol=tolerance, atol=tolerance * scale, err_msg=name
        )


# (rows, hidden) that take each path of the kernels' products
PRODUCTS = {"loop": (3, 5), "flipped_blas": (17, 45), "plain_blas": (65, 24)}


def product_path(rows, inner, cols):
    """Which path ``recurrent_cpu.step_product`` takes for a product of these sizes."""
    if rows * inner * cols <= recurrent_cpu.SMALL_PRODUCT or rows < recurrent_cpu.BLAS_ROWS:
        return "loop"
    return "flipped_blas" if rows < recurrent_cpu.FLIPPED_ROWS else "plain_blas"


@pytest.mark.parametrize("with_grad_states", [True, False], ids=["sequences", "last"])
@pytest.mark.parametrize("path", list(PRODUCTS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_sequence_kernels_match_the_reference(
    spec, dtype, path, with_grad_states, rng, monkeypatch
):
    """Every path of the kernels' products (a plain loop, the BLAS on the transposed
    product, the BLAS on the product itself) gives the reference's states, saved gates and
    every gradient."""
    n_batch, hidden = PRODUCTS[path]
    assert product_path(n_batch, hidden, spec.gates * hidden) == path
    case = sequence_case(spec, 5, n_batch, hidden, dtype, rng)
    assert backend.kernel(spec.forward_op, np) is not None
    fused = run_sequence(spec, case, with_grad_states)
    monkeypatch.setenv("GPUNET_KERNELS", "0")
    assert backend.kernel(spec.forward_op, np) is None
    assert_close(fused, run_sequence(spec, case, with_grad_states), dtype)


def test_lstm_kernels_are_stable_for_huge_preactivations(rng):
    case = sequence_case(recurrent.LSTM, 4, 3, 4, "float32", rng, scale=1e4)
    got = run_sequence(recurrent.LSTM, case)
    for name, array in got.items():
        assert np.all(np.isfinite(array)), name
    gates = got["saved"]
    assert set(np.unique(np.round(gates[..., :8]))) <= {0.0, 1.0}  # saturated, not NaN


@pytest.mark.parametrize(
    "spec", [recurrent.LSTM, recurrent.GRU, recurrent.RNN_TANH], ids=lambda spec: spec.name
)
def test_rows_in_parts_give_the_numbers_of_one_part(spec, rng, monkeypatch):
    """Each of gpunet's threads runs every step of its run of rows; the rows are
    independent, so the numbers match one part's to rounding (the products' blocking
    differs with their row count) and a run in parts repeats bit for bit."""
    case = sequence_case(spec, 5, 21, 16, "float32", rng)  # parts of 10 and 11 rows
    calls = []
    for direction in ("forward", "backward"):
        name = f"_{spec.name.split('_')[0]}_{direction}"
        kernel = getattr(recurrent_cpu, name)

        def counted(*args, kernel=kernel, direction=direction):
            first, last = args[-2:]
            calls.append((direction, last - first, threading.current_thread().name))
            return kernel(*args)

        monkeypatch.setattr(recurrent_cpu, name, counted)
    monkeypatch.setattr(_parallel, "threads", lambda: 1)
    one = run_sequence(spec, case)
    assert {rows for _, rows, _ in calls} == {21}
    calls.clear()
    monkeypatch.setattr(_parallel, "threads", lambda: 2)
    monkeypatch.setattr(_parallel, "MIN_WORK", 1)
    parts = run_sequence(spec, case)
    again = run_sequence(spec, case)
    for direction in ("forward", "backward"):
        mine = [call for call in calls if call[0] == direction]
        assert sorted(rows for _, rows, _ in mine) == [10, 10, 11, 11]  # two runs of two parts
        names = {name for _, _, name in mine}
        assert "MainThread" in names and len(names) == 2
    for name, expected in one.items():
        np.testing.assert_allclose(parts[name], expected, rtol=2e-5, atol=2e-6, err_msg=name)
        np.testing.assert_array_equal(parts[name], again[name], err_msg=name)


def test_float32_sigmoid_and_tanh_are_accurate_everywhere():
    """The vectorised float32 forms used by the CPU cells, against float64 NumPy."""

    @numba.njit
    def evaluate(x, sig, tanh):
        for i in range(x.size):
            sig[i] = recurrent_cells.sigmoid_scalar(x[i])
            tanh[i] = recurrent_cells.tanh_scalar(x[i])

    ramp = np.linspace(-100, 100, 200_001)
    tiny = np.array([0.0, -0.0, 1e-30, -1e-30, 1e-8, -1e-8, 0.2999, 0.3, 0.3001])
    extreme = np.array([87.5, -87.5, 89.0, -89.0, 1e3, -1e3, np.inf, -np.inf])
    x = np.concatenate([ramp, tiny, extreme]).astype(np.float32)
    sig, tanh = np.empty_like(x), np.empty_like(x)
    evaluate(x, sig, tanh)
    exact = x.astype(np.float64)
    sig_exact = np.exp(-np.logaddexp(0.0, -exact))
    tanh_exact = np.tanh(exact)
    # below x = -87 the float32 sigmoid stops at 6e-39 (exp is clamped, never overflows)
    np.testing.assert_allclose(sig, sig_exact, rtol=3e-7, atol=1e-37)
    np.testing.assert_allclose(tanh, tanh_exact, rtol=3e-7, atol=1e-45)
    assert np.array_equal(tanh[-4:], [1, -1, 1, -1]) and np.array_equal(sig[-4::2], [1, 1])
    nan = np.full(1, np.nan, dtype=np.float32)
    evaluate(nan, sig[:1], tanh[:1])
    assert np.isnan(sig[0]) and np.isnan(tanh[0])


def test_the_cpu_path_never_imports_numba_cuda():
    """The CUDA kernels are built on first use: training on the CPU does not need them."""
    script = (
        "import sys, numpy as np, gpunet\n"
        "from gpunet.nn import LSTM\n"
        "layer = LSTM(3, 4, return_sequences=True)\n"
        "out = layer(gpunet.asarray(np.ones((2, 5, 3), dtype=np.float32)))\n"
        "layer.backward(out)\n"
        "import gpunet.kernels.recurrent\n"
        "assert gpunet.kernels.recurrent.lstm_sequence_forward_cuda is not None\n"
        "print('numba.cuda' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env["GPUNET_BACKEND"] = "numpy"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "False"


def _kernel_arguments(spec, dtype):
    """Tiny arguments of the forward and backward CPU kernels of ``spec``."""
    steps, n_batch, features, hidden = 3, 4, 2, 8
    width = spec.gates * hidden

    def zeros(*shape):
        return np.zeros(shape, dtype=dtype)

    states, cells = zeros(steps + 1, n_batch, hidden), zeros(steps + 1, n_batch, hidden)
    saved, d_xw, d_hw = zeros(steps, n_batch, 4 * hidden), zeros(steps, n_batch, width), None
    x, rows = zeros(steps, n_batch, features), zeros(steps, n_batch, 1 + features + hidden)
    stacked = (zeros(1 + features + hidden, width), zeros(width, 1 + features + hidden))
    weights = (zeros(hidden, width), zeros(width, hidden))
    no_grad, dh, span = zeros(0, n_batch, hidden), zeros(n_batch, hidden), (0, n_batch)
    if spec.name == "lstm":
        forward = (*stacked, x, rows, states, cells, saved, *span)
        return forward, (*weights, cells, saved, no_grad, dh, zeros(n_batch, hidden), d_xw, *span)
    if spec.name == "gru":
        d_hw = zeros(steps, n_batch, width)
        inputs = (zeros(steps, n_batch, width), *weights, zeros(width), zeros(width), x, rows)
        forward = (*inputs, states, saved, *span)
        return forward, (*weights, states, saved, no_grad, dh, d_xw, d_hw, *span)
    relu = spec.name == "rnn_relu"
    forward = (*stacked, x, rows, states, relu, *span)
    return forward, (*weights, states, no_grad, dh, d_xw, relu, *span)


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_float32_cell_loops_are_vectorised(spec):
    """The cell math of every float32 kernel compiles to vector instructions: a vector
    subtraction or division appears only where a cell loop was vectorised (the products
    and gradient sums only multiply and add). A loop that stores into several arrays and
    loads from many others stays scalar, several times slower."""
    kind = spec.name.split("_")[0]
    arguments = _kernel_arguments(spec, np.float32)
    for direction, args in zip(("forward", "backward"), arguments, strict=True):
        kernel = getattr(recurrent_cpu, f"_{kind}_{direction}")
        fresh = numba.njit(nogil=True, error_model="numpy", fastmath={"contract"})(kernel.py_func)
        fresh(*args)
        ir = fresh.inspect_llvm(fresh.signatures[0])
        assert re.search(r"= f(sub|div) [a-z ]*<\d+ x float>", ir), f"{kind} {direction}"


@pytest.mark.parametrize("shape", [(1, 1), (3, 70), (33, 65), (160, 512)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_transposed_weights_are_exact_contiguous_copies(shape, dtype, rng):
    """The tiled transpose the kernels' products take, against NumPy's, on shapes that
    are and are not multiples of its tiles, from C- and Fortran-ordered arrays."""
    a = rng.standard_normal(shape).astype(dtype)
    for source in (a, np.asfortranarray(a)):
        out = recurrent_cpu._transposed(source)
        assert out.flags.c_contiguous and out.dtype == a.dtype and out.shape == shape[::-1]
        np.testing.assert_array_equal(out, a.T)
