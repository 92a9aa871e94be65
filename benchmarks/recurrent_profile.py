"""Where W3's training step spends its time: the GEMMs, the cell kernels, the rest.

    python -m benchmarks.recurrent_profile                 # CPU, batch 64
    python -m benchmarks.recurrent_profile --device gpu    # CuPy + Numba CUDA, batch 256

Times (medians, the GPU synchronised after each) the whole training step, then its parts
on the same shapes: the forward and backward passes over the sequence, each pass's
per-step GEMMs alone and cell kernels alone (whole batch, one call per step), and the
weight-gradient GEMMs (no cells with ``GPUNET_KERNELS=0``: the steps then run the
array-API reference). On the GPU it also times the host's side of one cell launch
(launches queued back to back, no synchronisation between them): what a step costs in
Python and in Numba's launch, whatever the GPU's speed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import numpy as np

from benchmarks.recurrent_step import FEATURES, HIDDEN, STEPS, build_recurrent
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


def profile(device: str, batch: int, seconds: float) -> dict[str, float]:
    """Milliseconds of each part of W3's step (see the module docstring)."""
    import gpunet
    from gpunet import backend
    from gpunet.ops import bptt

    backend.set("cupy" if device == "gpu" else "numpy")
    sync = gpunet_sync(device)
    rng = np.random.default_rng(0)
    width = 4 * HIDDEN

    def draw(*shape: int, scale: float = 1.0) -> object:
        return gpunet.asarray((scale * rng.standard_normal(shape)).astype(np.float32))

    x_steps = draw(STEPS * batch, FEATURES)
    weight_ih, weight_hh = draw(FEATURES, width, scale=0.1), draw(HIDDEN, width, scale=0.1)
    bias, h0 = draw(width, scale=0.1), draw(batch, HIDDEN, scale=0.0)
    grad_last = draw(batch, HIDDEN)
    xp = backend.namespace(x_steps)

    def forward() -> object:
        xw = bptt.Projection(x_steps, weight_ih, batch)
        return bptt.sequence_forward("lstm", xw, weight_hh, bias, bias, h0, h0)

    cache = forward()
    d_xw = bptt.sequence_backward(cache, weight_hh, None, grad_last).xw
    d_flat = xp.reshape(d_xw, (STEPS * batch, width))
    previous = xp.reshape(cache.states[:-1, ...], (STEPS * batch, HIDDEN))
    step_in = [cache.states[t] for t in range(STEPS)]
    grads_in = [d_xw[t] for t in range(STEPS)]
    cell = backend.kernel("lstm_cell_forward", xp)
    cell_back = backend.kernel("lstm_cell_backward", xp)
    xw0 = xp.reshape(x_steps[:batch, ...] @ weight_ih, (batch, width))
    hw0 = step_in[1] @ weight_hh
    h_out, c_out = xp.empty_like(h0), xp.empty_like(h0)
    gates, d_pre, dc = xp.empty_like(hw0), xp.empty_like(hw0), xp.zeros_like(h0)
    c_prev, saved = cache.cells[1], cache.saved[1]

    def forward_gemms() -> None:
        for h in step_in:
            h @ weight_hh

    def forward_cells() -> None:
        for _ in range(STEPS):
            cell(xw0, hw0, bias, bias, c_prev, h_out, c_out, gates)

    def backward_gemms() -> None:
        weight_t = weight_hh.T
        for d in grads_in:
            d @ weight_t

    def backward_cells() -> None:
        for _ in range(STEPS):
            cell_back(grad_last, h_out, dc, c_prev, c_out, saved, d_pre)

    def weight_gradients() -> None:
        xp.matrix_transpose(d_flat) @ previous
        xp.matrix_transpose(x_steps) @ d_flat

    parts = [
        ("training step", build_recurrent("lstm", "gpunet", device, batch)),
        ("forward pass", forward),
        ("forward: step GEMMs", forward_gemms),
        ("forward: cells", forward_cells),
        ("backward pass", lambda: bptt.sequence_backward(cache, weight_hh, None, grad_last)),
        ("backward: step GEMMs", backward_gemms),
        ("backward: cells", backward_cells),
        ("weight-gradient GEMMs", weight_gradients),
    ]
    if cell is None:  # GPUNET_KERNELS=0: the steps run the array-API reference
        parts = [(name, run) for name, run in parts if not name.endswith("cells")]
    result = {name: _median_ms(run, sync, seconds) for name, run in parts}
    if device == "gpu" and cell is not None:
        sync()
        start = time.perf_counter()
        forward_cells()
        result["host time of one cell launch"] = 1e3 * (time.perf_counter() - start) / STEPS
        sync()
    return result


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
        share = f"{100 * ms / step:5.1f}%" if "launch" not in name else ""
        print(f"  {name:<36} {ms:9.3f} ms {share}")
    if args.json:
        with open(args.json, "a") as out:
            out.write(json.dumps({"device": args.device, "batch": batch, **result}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
