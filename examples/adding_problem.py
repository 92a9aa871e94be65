"""The adding problem: a vanilla RNN cannot bridge 100 time steps, an LSTM can.

Hochreiter & Schmidhuber (1997), experiment 4, in the form used since (e.g. Le et al.,
2015): each sequence has T steps of (value, marker) pairs, values uniform in [0, 1],
exactly two markers, one in each half; the target is the sum of the two marked values.
Always predicting 1.0 gives MSE = Var(u1 + u2) = 1/6 = 0.167. To do better, a network
must carry a value across up to T steps: the gradient of a tanh RNN vanishes on the way,
the LSTM's cell state carries it. Both networks get the same budget: hidden units,
Adam, gradient-norm clipping, steps and fresh random batches. Both are trained by
backpropagation through time: the loss at the last step is propagated back through
every earlier step of the sequence.

    python examples/adding_problem.py            # T = 100 (a few minutes on 2 cores)
    python examples/adding_problem.py --quick    # T = 50, under a minute
    python examples/adding_problem.py --length 200 --steps 5000   # harder, much longer

Prints ``rnn test mse: X`` and ``lstm test mse: Y`` and writes the learning curves to
``OUT/adding_problem.png``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from common import command_line, figure, parse, report, save

import gpunet
from gpunet.losses import MSE
from gpunet.nn import LSTM, RNN, Dense, Sequential
from gpunet.optim import Adam, clip_grad_norm

BASELINE = 1.0 / 6.0  # MSE of always predicting 1.0

# length, training steps, evaluate every, learning rate
SETTINGS = {"quick": (50, 800, 50, 2e-2), "full": (100, 1200, 100, 1e-2)}


def adding_data(n: int, length: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` sequences (n, length, 2) of (value, marker) and their targets (n, 1)."""
    values = rng.uniform(0.0, 1.0, size=(n, length))
    half = length // 2
    first = rng.integers(0, half, size=n)
    second = rng.integers(half, length, size=n)
    markers = np.zeros((n, length))
    rows = np.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    x = np.stack([values, markers], axis=-1).astype(np.float32)
    y = (values[rows, first] + values[rows, second])[:, None].astype(np.float32)
    return x, y


def train(
    kind: str,
    length: int,
    steps: int,
    every: int,
    lr: float,
    hidden: int = 32,
    batch: int = 64,
    seed: int = 0,
) -> tuple[list[int], list[float]]:
    """Train an RNN or LSTM on fresh batches; returns (steps, test MSE) along the way."""
    gpunet.seed(seed)
    recurrent = RNN(2, hidden) if kind == "rnn" else LSTM(2, hidden)
    model = Sequential(recurrent, Dense(hidden, 1))
    loss_fn, optimizer = MSE(), Adam(model.parameters(), lr=lr)
    data_rng = np.random.default_rng(seed + 1)
    test_x, test_y = adding_data(500, length, np.random.default_rng(12345))
    test_x, test_y = gpunet.asarray(test_x), gpunet.asarray(test_y)
    marks, errors = [], []
    for step in range(1, steps + 1):
        x, y = adding_data(batch, length, data_rng)
        loss_fn(model(gpunet.asarray(x)), gpunet.asarray(y))
        optimizer.zero_grad()
        model.backward(loss_fn.backward())
        clip_grad_norm(model.parameters(), 1.0)
        optimizer.step()
        if step % every == 0 or step == steps:
            test_mse = float(gpunet.to_numpy(loss_fn(model(test_x), test_y)))
            marks.append(step)
            errors.append(test_mse)
    return marks, errors


def plot(curves: dict[str, tuple[list[int], list[float]]], length: int, out: Path) -> Path:
    fig = figure(6.5, 4)
    ax = fig.subplots()
    for kind, (marks, errors) in curves.items():
        ax.plot(marks, errors, marker="o", markersize=3, label=kind.upper())
    ax.axhline(BASELINE, color="gray", linestyle="--", label="predict 1.0 (MSE 1/6)")
    ax.set_yscale("log")
    ax.set_xlabel("training step (batch of 64)")
    ax.set_ylabel("test MSE (log scale)")
    ax.set_title(f"Adding problem, T = {length}")
    ax.legend(loc="lower left")
    return save(fig, out, "adding_problem.png")


def main(argv: Sequence[str] | None = None) -> None:
    parser = command_line(__doc__, "T = 50 and 800 steps instead of T = 100 and 1200 steps")
    parser.add_argument("--length", type=int, default=None, help="override the sequence length")
    parser.add_argument("--steps", type=int, default=None, help="override the training steps")
    args = parse(parser, argv)

    length, steps, every, lr = SETTINGS["quick" if args.quick else "full"]
    length = args.length or length
    steps = args.steps or steps
    print(f"backend: {gpunet.backend.name()}")
    note = " (--quick uses a shorter sequence than the T = 100 of the paper)" if args.quick else ""
    print(f"adding problem, sequence length T = {length}{note}; {steps} steps of 64 sequences")
    print(f"baseline (always predict 1.0): test mse {BASELINE:.3f}")
    curves = {}
    for kind in ("rnn", "lstm"):
        start = time.perf_counter()
        curves[kind] = train(kind, length, steps, every, lr, seed=args.seed)
        seconds = time.perf_counter() - start
        print(f"{kind} test mse: {curves[kind][1][-1]:.4f}  ({seconds:.1f} s)")
    plot(curves, length, args.out)
    report(
        length=length,
        steps=steps,
        baseline=BASELINE,
        **{f"{kind}_mse": errors[-1] for kind, (_, errors) in curves.items()},
    )


if __name__ == "__main__":
    main()
