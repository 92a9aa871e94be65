"""The fused recurrent-cell kernels against the array-API reference (the oracle)."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
from gpunet.kernels import recurrent as kernels

from gpunet import backend
from gpunet.ops import bptt
from gpunet.ops import recurrent as cells

# The kernels take NumPy arrays whatever the backend under test, so they are checked once,
# in the NumPy session (the cudasim tests run wherever the simulator is on).
numpy_session = pytest.mark.skipif(
    os.environ.get("GPUNET_BACKEND", "numpy") != "numpy",
    reason="kernel parity runs in the numpy session",
)

TOLERANCE = {np.float32: 1e-5, np.float64: 1e-13}
GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def _case(cell, n_batch, hidden, dtype, rng, scale=2.0):
    """Random inputs of one forward and one backward step, as NumPy arrays."""
    width = GATES[cell] * hidden

    def draw(*shape):
        return (scale * rng.standard_normal(shape)).astype(dtype)

    return {
        "xw": draw(n_batch, width),
        "hw": draw(n_batch, width),
        "b_ih": draw(width),
        "b_hh": draw(width),
        "state": draw(n_batch, hidden),
        "grad_h": draw(n_batch, hidden),
        "dh_rec": draw(n_batch, hidden),
        "carry": draw(n_batch, hidden),
    }


def _expected(cell, case, relu):
    """(forward outputs, backward outputs) of the reference for one step."""
    a = case
    if cell == "rnn":
        h = cells.rnn_cell_forward_reference(a["xw"], a["hw"], a["b_ih"], a["b_hh"], relu)
        return [h], [cells.rnn_cell_backward_reference(a["grad_h"], a["dh_rec"], h, relu)]
    if cell == "lstm":
        h, c, gates = cells.lstm_cell_forward_reference(
            a["xw"], a["hw"], a["b_ih"], a["b_hh"], a["state"]
        )
        back = cells.lstm_cell_backward_reference(
            a["grad_h"], a["dh_rec"], a["carry"], a["state"], c, gates
        )
        return [h, c, gates], list(back)
    h, saved = cells.gru_cell_forward_reference(a["xw"], a["hw"], a["b_ih"], a["b_hh"], a["state"])
    back = cells.gru_cell_backward_reference(
        a["grad_h"], a["dh_rec"], a["carry"], a["state"], saved
    )
    return [h, saved], list(back)


def _run(cell, case, relu, forward, backward):
    """Run a pair of kernels (``forward(*arrays)``, ``backward(*arrays)``) on a case."""
    a = case
    n_batch, hidden = a["state"].shape
    width, dtype = a["xw"].shape[1], a["xw"].dtype

    def empty(columns):
        return np.empty((n_batch, columns), dtype=dtype)

    carry = a["carry"].copy()
    if cell == "rnn":
        h, d_pre = empty(hidden), empty(hidden)
        forward(a["xw"], a["hw"], a["b_ih"], a["b_hh"], h)
        backward(a["grad_h"], a["dh_rec"], h, d_pre)
        return [h], [d_pre]
    if cell == "lstm":
        h, c, gates, d_pre = empty(hidden), empty(hidden), empty(width), empty(width)
        forward(a["xw"], a["hw"], a["b_ih"], a["b_hh"], a["state"], h, c, gates)
        backward(a["grad_h"], a["dh_rec"], carry, a["state"], c, gates, d_pre)
        return [h, c, gates], [d_pre, carry]
    h, saved, d_xw, d_hw = empty(hidden), empty(4 * hidden), empty(width), empty(width)
    forward(a["xw"], a["hw"], a["b_ih"], a["b_hh"], a["state"], h, saved)
    backward(a["grad_h"], a["dh_rec"], carry, a["state"], saved, d_xw, d_hw)
    return [h, saved], [d_xw, d_hw, carry]


def _assert_close(got, expected, dtype):
    for g, e in zip(got, expected, strict=True):
        assert g.dtype == dtype
        np.testing.assert_allclose(g, e, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])


CELL_CASES = [("rnn", False), ("rnn", True), ("lstm", False), ("gru", False)]
CELL_IDS = ["rnn_tanh", "rnn_relu", "lstm", "gru"]


@numpy_session
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("cell, relu", CELL_CASES, ids=CELL_IDS)
def test_cpu_kernels_match_reference(cell, relu, dtype, rng):
    case = _case(cell, 5, 7, dtype, rng)
    forward = getattr(kernels, f"{cell}_cell_forward_cpu")
    backward = getattr(kernels, f"{cell}_cell_backward_cpu")
    if cell == "rnn":
        forward_, backward_ = forward, backward

        def forward(*arrays):
            forward_(*arrays, relu=relu)

        def backward(*arrays):
            backward_(*arrays, relu=relu)

    got = _run(cell, case, relu, forward, backward)
    expected = _expected(cell, case, relu)
    _assert_close(got[0], expected[0], dtype)
    _assert_close(got[1], expected[1], dtype)


@numpy_session
def test_cpu_kernels_are_stable_for_huge_preactivations(rng):
    case = _case("lstm", 3, 4, np.float32, rng, scale=1e4)
    got = _run("lstm", case, False, kernels.lstm_cell_forward_cpu, kernels.lstm_cell_backward_cpu)
    for array in got[0] + got[1]:
        assert np.all(np.isfinite(array))
    gates = got[0][2]
    assert set(np.unique(np.round(gates[:, :8]))) <= {0.0, 1.0}  # saturated, not NaN


@numpy_session
def test_cpu_kernel_on_strided_input(rng):
    n_batch, hidden = 64, 1024
    case = _case("gru", n_batch, hidden, np.float32, rng)
    case["xw"] = np.asfortranarray(case["xw"])  # the wrapper makes inputs contiguous
    got = _run("gru", case, False, kernels.gru_cell_forward_cpu, kernels.gru_cell_backward_cpu)
    expected = _expected("gru", case, False)
    _assert_close(got[0], expected[0], np.float32)
    _assert_close(got[1], expected[1], np.float32)


@numpy_session
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cell, relu", CELL_CASES, ids=CELL_IDS)
def test_sequence_kernel_path_matches_reference_path(cell, relu, dtype, rng, monkeypatch):
    steps, n_batch, hidden = 6, 3, 5
    width = GATES[cell] * hidden

    def draw(*shape):
        return backend.asarray(rng.standard_normal(shape), dtype=dtype)

    xw, weight_hh, b_ih, b_hh = (
        draw(steps, n_batch, width),
        draw(hidden, width),
        draw(width),
        draw(width),
    )
    h0, c0 = draw(n_batch, hidden), draw(n_batch, hidden)
    grad_states, grad_h, grad_c = (
        draw(steps, n_batch, hidden),
        draw(n_batch, hidden),
        draw(n_batch, hidden),
    )
    results = []
    for enabled in ("1", "0"):
        monkeypatch.setenv("GPUNET_KERNELS", enabled)
        cache = bptt.sequence_forward(cell, xw, weight_hh, b_ih, b_hh, h0, c0, relu)
        grads = bptt.sequence_backward(cache, weight_hh, grad_states, grad_h, grad_c)
        arrays = [cache.states, grads.xw, grads.weight_hh, grads.b_ih, grads.b_hh, grads.h0]
        if cell == "lstm":
            arrays += [cache.cells, grads.c0]
        results.append([backend.to_numpy(a) for a in arrays])
    tolerance = 1e-5 if dtype == "float32" else 1e-12
    for fused, reference in zip(*results, strict=True):
        np.testing.assert_allclose(fused, reference, rtol=tolerance, atol=tolerance)


@numpy_session
def test_dispatching_cell_ops_use_the_kernel_and_agree(rng, monkeypatch):
    case = _case("lstm", 2, 3, np.float64, rng)
    args = (case["xw"], case["hw"], case["b_ih"], case["b_hh"], case["state"])
    assert backend.kernel("lstm_cell_forward", backend.xp()) is kernels.lstm_cell_forward_cpu
    fused = cells.lstm_cell_forward(*args)
    monkeypatch.setenv("GPUNET_KERNELS", "0")
    assert backend.kernel("lstm_cell_forward", backend.xp()) is None
    _assert_close(fused, cells.lstm_cell_forward(*args), np.float64)


# --------------------------------------------------------------------------- CUDA (simulator)


@pytest.mark.cudasim
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("cell, relu", CELL_CASES, ids=CELL_IDS)
def test_cuda_kernels_match_reference_in_the_simulator(cell, relu, dtype, rng):
    case = _case(cell, 2, 3, dtype, rng)

    def forward(*arrays):
        kernels.launch(f"{cell}_cell_forward", *arrays, relu=relu)

    def backward(*arrays):
        kernels.launch(f"{cell}_cell_backward", *arrays, relu=relu)

    got = _run(cell, case, relu, forward, backward)
    expected = _expected(cell, case, relu)
    _assert_close(got[0], expected[0], dtype)
    _assert_close(got[1], expected[1], dtype)


@numpy_session
def test_float32_sigmoid_and_tanh_are_accurate_everywhere():
    """The vectorised float32 forms used by the CPU cells, against float64 NumPy."""
    import numba

    @numba.njit
    def evaluate(x, sig, tanh):
        for i in range(x.size):
            sig[i] = kernels.sigmoid_scalar(x[i])
            tanh[i] = kernels.tanh_scalar(x[i])

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


def _sequence_case(cell, steps, n_batch, hidden, rng):
    width = GATES[cell] * hidden
    return {
        "xw": rng.standard_normal((steps, n_batch, width)).astype(np.float32),
        "weight_hh": (0.1 * rng.standard_normal((hidden, width))).astype(np.float32),
        "bias": rng.standard_normal(width).astype(np.float32),
        "h0": rng.standard_normal((n_batch, hidden)).astype(np.float32),
        "grad_states": rng.standard_normal((steps, n_batch, hidden)).astype(np.float32),
        "grad_last": rng.standard_normal((n_batch, hidden)).astype(np.float32),
    }


def _sequence_results(cell, a):
    c0 = a["h0"] * 0.5 if cell == "lstm" else None
    cache = bptt.sequence_forward(cell, a["xw"], a["weight_hh"], a["bias"], a["bias"], a["h0"], c0)
    grads = bptt.sequence_backward(
        cache, a["weight_hh"], a["grad_states"], a["grad_last"], a["grad_last"] * 0.5
    )
    results = [cache.states, grads.xw, grads.weight_hh, grads.b_ih, grads.h0]
    if cell != "rnn":
        results.append(cache.saved)
    if cell == "lstm":
        results += [cache.cells, grads.c0]
    return [np.array(r, copy=True) for r in results]



@numpy_session
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_sequence_in_parts_of_rows_gives_the_numbers_of_one_part(cell, rng, monkeypatch):
    """Each part runs every step of its rows on one thread; the rows are independent, so
    states and gradients match the whole batch's to rounding (the GEMMs' blocking differs
    with their row count), and a run in parts repeats bit for bit."""
    from gpunet.kernels import _parallel

    steps, n_batch, hidden = 5, 21, 16  # parts of 10 and 11 rows
    a = _sequence_case(cell, steps, n_batch, hidden, rng)
    calls = []
    for direction in ("forward", "backward"):
        op = f"{cell}_cell_{direction}"
        original = kernels._KERNELS[op]

        def counted(*args, kernel=original[0], op=op):
            calls.append((op, args[0].shape[0], threading.current_thread().name))
            return kernel(*args)

        monkeypatch.setitem(kernels._KERNELS, op, (counted, *original[1:]))
    monkeypatch.setattr(_parallel, "threads", lambda: 1)
    one = _sequence_results(cell, a)
    assert {rows for _, rows, _ in calls} == {n_batch}
    calls.clear()
    monkeypatch.setattr(_parallel, "threads", lambda: 2)
    monkeypatch.setattr(_parallel, "MIN_WORK", 1)
    monkeypatch.setattr(kernels, "_ROWS_PER_PART", 4)
    parts = _sequence_results(cell, a)
    again = _sequence_results(cell, a)
    for direction in ("forward", "backward"):
        mine = [c for c in calls if c[0] == f"{cell}_cell_{direction}"]
        assert sorted(rows for _, rows, _ in mine) == [10] * 2 * steps + [11] * 2 * steps
        names = {name for _, _, name in mine}
        assert "MainThread" in names and len(names) == 2
    for got, expected, repeated in zip(parts, one, again, strict=True):
        np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-6)
        np.testing.assert_array_equal(got, repeated)
