"""The fixed cost of a recurrent time step: a sequence so small that the arithmetic is
negligible, so what is timed is what every step costs whatever its size.

    python -m benchmarks.recurrent_fixed_cost             # T = 1000, batch 1, 4 -> 8
    python -m benchmarks.recurrent_fixed_cost --steps 200 --rounds 3

For each cell kind (tanh and ReLU RNN, LSTM, GRU) it times one forward and one backward
pass over the sequence in gpunet and in PyTorch (when installed), in alternating rounds,
and prints the medians divided by T: microseconds per step, forward + backward.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import numpy as np

KINDS = ("rnn_tanh", "rnn_relu", "lstm", "gru")
FEATURES, HIDDEN = 4, 8


def _gpunet_pass(kind: str, x: np.ndarray) -> Callable[[], None]:
    import gpunet
    from gpunet.nn import GRU, LSTM, RNN

    gpunet.seed(0)
    make = {
        "rnn_tanh": lambda: RNN(FEATURES, HIDDEN),
        "rnn_relu": lambda: RNN(FEATURES, HIDDEN, nonlinearity="relu"),
        "lstm": lambda: LSTM(FEATURES, HIDDEN),
        "gru": lambda: GRU(FEATURES, HIDDEN),
    }[kind]
    layer, inputs = make(), gpunet.asarray(x)
    grad = gpunet.asarray(np.ones((x.shape[0], HIDDEN), dtype=np.float32))

    def run() -> None:
        layer(inputs)
        layer.backward(grad)

    return run


def _torch_pass(kind: str, x: np.ndarray) -> Callable[[], None]:
    import torch

    torch.manual_seed(0)
    make = {
        "rnn_tanh": lambda: torch.nn.RNN(FEATURES, HIDDEN, batch_first=True),
        "rnn_relu": lambda: torch.nn.RNN(FEATURES, HIDDEN, nonlinearity="relu", batch_first=True),
        "lstm": lambda: torch.nn.LSTM(FEATURES, HIDDEN, batch_first=True),
        "gru": lambda: torch.nn.GRU(FEATURES, HIDDEN, batch_first=True),
    }[kind]
    layer, inputs = make(), torch.from_numpy(x)

    def run() -> None:
        out, _ = layer(inputs)
        out[:, -1].sum().backward()

    return run


def _median_seconds(run: Callable[[], None], seconds: float) -> list[float]:
    times: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 3:
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


def measure(steps: int, rounds: int, seconds: float) -> list[dict]:
    """Microseconds per step of each cell kind, gpunet and PyTorch in alternating rounds."""
    try:
        import torch  # noqa: F401

        frameworks = {"gpunet": _gpunet_pass, "torch": _torch_pass}
    except ImportError:
        frameworks = {"gpunet": _gpunet_pass}
    x = np.random.default_rng(0).standard_normal((1, steps, FEATURES)).astype(np.float32)
    results = []
    for kind in KINDS:
        runs = {name: build(kind, x) for name, build in frameworks.items()}
        times: dict[str, list[float]] = {name: [] for name in runs}
        for run in runs.values():
            run()  # compile, warm up
        for round_index in range(rounds):
            order = list(runs) if round_index % 2 == 0 else list(runs)[::-1]
            for name in order:
                times[name] += _median_seconds(runs[name], seconds)
        line = {"kind": kind, "steps": steps}
        for name, values in times.items():
            line[f"{name}_us_per_step"] = round(1e6 * statistics.median(values) / steps, 3)
        results.append(line)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=0.3, help="length of one round")
    parser.add_argument("--json", help="also append the figures as JSON lines here")
    args = parser.parse_args(argv)
    results = measure(args.steps, args.rounds, args.seconds)
    print(f"fixed cost per step: T = {args.steps}, batch 1, {FEATURES} -> {HIDDEN}, fwd + bwd")
    for line in results:
        theirs = line.get("torch_us_per_step")
        torch_text = f"   PyTorch {theirs:7.3f} us" if theirs is not None else ""
        print(f"  {line['kind']:<9} gpunet {line['gpunet_us_per_step']:7.3f} us{torch_text}")
    if args.json:
        with open(args.json, "a") as out:
            for line in results:
                out.write(json.dumps(line) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
