"""The cost of ``gpunet.fit`` over a hand-written loop, per training step, on W1.

W1: an MLP 784-256-128-10 with ReLU, softmax cross-entropy, SGD, batches of 128 drawn
in a shuffled order from host (NumPy) data. Both loops batch the same way
(``epoch_order`` + ``take_rows``) and run the same updates; ``fit`` adds its
bookkeeping: device-side loss sums, callbacks dispatch, History. Rounds alternate
between them, in a rotating order, so that drifts in machine load hit all alike; medians
of per-step time.

    python benchmarks/fit_overhead.py [--rounds 9] [--steps 40] [--epochs 3]

Each timed call trains ``--epochs`` epochs, so ``fit``'s fixed cost per call (checking
the data for NaN, building its History) is spread as it is in real use.

Prints one JSON line. ``fit_overhead_percent`` compares ``fit(metrics=(), verbose=0)``
(the same work as the hand-written loop); ``fit_default_overhead_percent`` is the
default ``fit`` (accuracy metric and a progress bar, which is drawn into a buffer here).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import time

import numpy as np

import gpunet
from gpunet import backend
from gpunet.data import epoch_order, take_rows
from gpunet.losses import CrossEntropy
from gpunet.nn import Dense, ReLU, Sequential
from gpunet.optim import SGD

BATCH = 128


def synchronize() -> None:
    """Wait for the GPU, so that a timer measures finished work."""
    if backend.name() == "cupy":
        import cupy

        cupy.cuda.get_current_stream().synchronize()


def build() -> tuple[Sequential, CrossEntropy, SGD]:
    model = Sequential(Dense(784, 256), ReLU(), Dense(256, 128), ReLU(), Dense(128, 10))
    model[0].input_grad = False  # as fit does, so that only the bookkeeping differs
    return model, CrossEntropy(), SGD(model.parameters(), lr=0.01)


def manual_loop(model, loss_fn, optimizer, x, y, epochs) -> None:
    """The loop a user would write."""
    for _ in range(epochs):
        order = epoch_order(len(x), True)
        for start in range(0, len(x), BATCH):
            index = order[start : start + BATCH]
            xb, yb = take_rows(x, index), take_rows(y, index)
            optimizer.zero_grad()
            loss_fn(model(xb), yb)
            model.backward(loss_fn.backward())
            optimizer.step()
    synchronize()


def timed(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--steps", type=int, default=40, help="training steps per epoch")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per timed call")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n = args.steps * BATCH
    x = rng.normal(size=(n, 784)).astype(np.float32)
    y = rng.integers(0, 10, size=n)
    gpunet.seed(0)
    model, loss_fn, optimizer = build()
    quiet = io.StringIO()

    def fit_lean() -> None:
        gpunet.fit(
            model,
            loss_fn,
            optimizer,
            x,
            y,
            epochs=args.epochs,
            batch_size=BATCH,
            metrics=(),
            verbose=0,
        )

    def fit_default() -> None:
        with contextlib.redirect_stderr(quiet):
            gpunet.fit(model, loss_fn, optimizer, x, y, epochs=args.epochs, batch_size=BATCH)

    runs = {
        "manual": lambda: manual_loop(model, loss_fn, optimizer, x, y, args.epochs),
        "fit": fit_lean,
        "fit_default": fit_default,
    }
    for run in runs.values():  # warm up: kernel compilation, allocator
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for round_ in range(args.rounds):
        # Rotate who goes first, so no loop always runs right after the same neighbour.
        for name in names[round_ % 3 :] + names[: round_ % 3]:
            times[name].append(timed(runs[name]) / (args.steps * args.epochs))
    median = {name: statistics.median(values) for name, values in times.items()}
    print(
        json.dumps(
            {
                "benchmark": "fit_overhead",
                "workload": "W1",
                "backend": backend.name(),
                "batch": BATCH,
                "steps_per_epoch": args.steps,
                "epochs_per_call": args.epochs,
                "rounds": args.rounds,
                "manual_ms_per_step": round(median["manual"] * 1e3, 4),
                "fit_ms_per_step": round(median["fit"] * 1e3, 4),
                "fit_default_ms_per_step": round(median["fit_default"] * 1e3, 4),
                "fit_overhead_percent": round(100 * (median["fit"] / median["manual"] - 1), 2),
                "fit_default_overhead_percent": round(
                    100 * (median["fit_default"] / median["manual"] - 1), 2
                ),
            }
        )
    )


if __name__ == "__main__":
    main()
