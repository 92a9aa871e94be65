"""Where W3's training step spends its time: the GEMMs, the cell math, the rest.

    python -m benchmarks.recurrent_profile                 # CPU, batch 64
    python -m benchmarks.recurrent_profile --device gpu    # CuPy + Numba CUDA, batch 256

Times (medians, the GPU synchronised after each) the whole training step, then its parts
on the same shapes: the forward and backward passes over the sequence (each one compiled
call on the CPU, one launch on CUDA), and the weight gradients (the rows [1, x, h_prev]
the forward pass kept, in one GEMM with the gate gradients). On the CPU it also
splits the compiled passes into what they do: their per-step products alone (forward,
the rows [1, x_t, h_{t-1}] by the stacked weights, the input projection included) and their
cell math alone, each in a compiled loop over the same rows per thread (no cell math with
``GPUNET_KERNELS=0``: the steps then run the array-API reference, products by NumPy). It
ends with the weight-gradient GEMMs' rate against this machine's GEMM rate.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import numba
import numpy as np
from gpunet.kernels import _parallel
from gpunet.kernels.recurrent_cells import lstm_backward_point, lstm_forward_point
from gpunet.kernels.recurrent_cpu import step_product

from benchmarks.recurrent_step import FEATURES, HIDDEN, STEPS, build_recurrent
from benchmarks.run import gemm_rate
from benchmarks.steps import gpunet_sync


def _median_ms(run: Callable[[], None], sync: Callable[[], None], seconds: float) -> float:
    run()
    sync()
    times: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 5:
        start = time.perf_counter()
        run()
        sync()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


@numba.njit(nogil=True, error_model="numpy", fastmath={"contract"})
def _products(a, b, b_t, first, last):
    """The per-step products of a pass alone: a[t, first:last] @ b for every t, by the
    kernels' own product (the BLAS, or a loop for small products)."""
    out = np.empty((last - first, b.shape[1]), dtype=a.dtype)
    out_t = np.empty((b.shape[1], last - first), dtype=a.dtype)
    for t in range(a.shape[0]):
        step_product(a[t, first:last], b, b_t, out, out_t)


@numba.njit(nogil=True, error_model="numpy", fastmath={"contract"})
def _cells_forward(gates, cells, first, last):
    """The LSTM cell math of a forward pass alone (the saved gates as pre-activations)."""
    hidden = cells.shape[2]
    for t in range(gates.shape[0]):
        for row in range(first, last):
            g, c_prev, c_new = gates[t, row], cells[t, row], cells[t + 1, row]
            for j in range(hidden):
                out = lstm_forward_point(
                    g[j], g[j + hidden], g[j + 2 * hidden], g[j + 3 * hidden], c_prev[j]
                )
                c_new[j] = out[4]


@numba.njit(nogil=True, error_model="numpy", fastmath={"contract"})
def _cells_backward(gates, cells, dh, first, last):
    """The LSTM cell math of a backward pass alone."""
    hidden = cells.shape[2]
    for t in range(gates.shape[0] - 1, -1, -1):
        for row in range(first, last):
            g, c_prev, c = gates[t, row], cells[t, row], cells[t + 1, row]
            for j in range(hidden):
                out = lstm_backward_point(
                    dh[row, j], dh[row, j], c_prev[j], c[j],
                    g[j], g[j + hidden], g[j + 2 * hidden], g[j + 3 * hidden],
                )  # fmt: skip
                dh[row, j] = out[4]


def _over_rows(batch: int, task: Callable[[int, int], None]) -> None:
    """``task(first, last)`` split over gpunet's threads as the sequence kernels split it."""
    parts = _parallel.count(batch, STEPS * batch * HIDDEN * 4 * HIDDEN / 16)
    edges = _parallel.bounds(batch, parts)
    _parallel.run(parts, lambda part: task(edges[part], edges[part + 1]))


def profile(device: str, batch: int, seconds: float) -> dict[str, float]:
    """Milliseconds of each part of W3's step (see the module docstring)."""
    import gpunet
    from gpunet import backend
    from gpunet.ops import bptt, recurrent

    backend.set("cupy" if device == "gpu" else "numpy")
    sync = gpunet_sync(device)
    rng = np.random.default_rng(0)
    width = 4 * HIDDEN

    def draw(*shape: int, scale: float = 1.0) -> object:
        return gpunet.asarray((scale * rng.standard_normal(shape)).astype(np.float32))

    x = draw(STEPS, batch, FEATURES)
    weight_ih, weight_hh = draw(FEATURES, width, scale=0.1), draw(HIDDEN, width, scale=0.1)
    bias, h0 = draw(width, scale=0.1), draw(batch, HIDDEN, scale=0.0)
    grad_last = draw(batch, HIDDEN)
    xp = backend.namespace(x)

    last: list = [None]  # as a layer does, each pass reuses the buffers of the one before

    def forward() -> object:
        weights = (weight_ih, weight_hh, bias, bias)
        last[0] = bptt.sequence_forward(recurrent.LSTM, x, *weights, h0, h0, reuse=last[0])
        return last[0]

    cache = bptt.sequence_forward(recurrent.LSTM, x, weight_ih, weight_hh, bias, bias, h0, h0)
    d_xw = bptt.sequence_backward(cache, weight_hh, None, grad_last).xw

    def weight_gradients() -> None:
        bptt.weight_gradients(xp, cache.rows, HIDDEN, d_xw, d_xw, separate=False)

    inside = {}
    if device == "cpu":
        kernel = backend.kernel(recurrent.LSTM.forward_op, xp)
        inside = _cpu_parts(kernel, cache, weight_ih, weight_hh)
    parts = [
        ("training step", build_recurrent("lstm", "gpunet", device, batch)),
        ("forward pass", forward),
        *[(name, run) for name, run in inside.items() if name.startswith("forward")],
        ("backward pass", lambda: bptt.sequence_backward(cache, weight_hh, None, grad_last)),
        *[(name, run) for name, run in inside.items() if name.startswith("backward")],
        ("weight-gradient GEMMs", weight_gradients),
    ]
    return {name: _median_ms(run, sync, seconds) for name, run in parts}


def weight_gradient_gflops(batch: int, milliseconds: float) -> float:
    """The rate of W3's weight-gradient GEMMs (``weight_hh``'s and ``weight_ih``'s)."""
    return 2 * STEPS * batch * 4 * HIDDEN * (HIDDEN + FEATURES) / milliseconds / 1e6


def _cpu_parts(kernel: object, cache: object, weight_ih: np.ndarray, weight_hh: np.ndarray) -> dict:
    """The products and the cell math of the compiled passes, each alone."""
    states, cells, gates = cache.states, cache.cells, cache.saved
    batch = states.shape[1]
    weight_t = np.ascontiguousarray(weight_hh.T)
    d_pre = np.array(gates, copy=True)
    dh = np.zeros((batch, HIDDEN), dtype=np.float32)
    # the forward product of a step: its rows [1, x_t, h_{t-1}] by the stacked weights
    rows = np.ascontiguousarray(cache.rows)
    bias = np.zeros((1, weight_hh.shape[1]), dtype=weight_hh.dtype)
    stacked = np.concatenate([bias, weight_ih, weight_hh])
    stacked_t = np.ascontiguousarray(stacked.T)

    def step_gemms(a: np.ndarray, b: np.ndarray, b_t: np.ndarray) -> Callable[[], None]:
        if kernel is None:  # the reference path: NumPy's products, one per step
            return lambda: [a[t] @ b for t in range(STEPS)]
        return lambda: _over_rows(batch, lambda first, last: _products(a, b, b_t, first, last))

    forward_gemms = step_gemms(rows, stacked, stacked_t)
    if kernel is None:  # the reference path multiplies the states by weight_hh
        forward_gemms = step_gemms(states, weight_hh, weight_t)
    parts = {
        "forward: step GEMMs": forward_gemms,
        "forward: cells": lambda: _over_rows(
            batch, lambda first, last: _cells_forward(gates, cells, first, last)
        ),
        "backward: step GEMMs": step_gemms(d_pre, weight_t, weight_hh),
        "backward: cells": lambda: _over_rows(
            batch, lambda first, last: _cells_backward(gates, cells, dh, first, last)
        ),
    }
    if kernel is None:  # GPUNET_KERNELS=0: no compiled cell math to time
        return {name: run for name, run in parts.items() if not name.endswith("cells")}
    return parts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--batch", type=int, help="default: 64 on the CPU, 256 on the GPU")
    parser.add_argument("--seconds", type=float, default=0.5, help="timing per part")
    parser.add_argument("--json", help="also append the figures as one JSON line here")
    args = parser.parse_args(argv)
    batch = args.batch or (256 if args.device == "gpu" else 64)
    result = profile(args.device, batch, args.seconds)
    step = result["training step"]
    print(f"W3 LSTM, batch {batch}, T = {STEPS}, {FEATURES} -> {HIDDEN}, on the {args.device}")
    for name, ms in result.items():
        print(f"  {name:<36} {ms:9.3f} ms {100 * ms / step:5.1f}%")
    rate, achieved = (
        gemm_rate(args.device),
        weight_gradient_gflops(batch, result["weight-gradient GEMMs"]),
    )
    print(
        f"  weight-gradient GEMMs at {achieved:.1f} GFLOP/s: {achieved / rate:.0%} of this "
        f"machine's GEMM rate ({rate:.1f} GFLOP/s, 1024^3)"
    )
    if args.json:
        with open(args.json, "a") as out:
            out.write(json.dumps({"device": args.device, "batch": batch, **result}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
