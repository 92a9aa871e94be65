"""XOR: the smallest network that solves it, trained by full-batch gradient descent.

No single layer can separate XOR: its two classes sit on opposite corners of the unit
square, and one straight line cannot split them. One hidden layer of four tanh units
can: the network bends its decision boundary around the corners. The training loop is
written out, so each step shows forward propagation (``model(x)``, the loss), backward
propagation (``loss_fn.backward()``, then ``model.backward(...)`` layer by layer) and the
update (``optimizer.step()``).

Prints the truth table with the network's outputs and how many of ``--seeds`` seeds
(100; 10 with ``--quick``) solve it, and saves a PNG with the loss per step and the
decision regions the network learned.

    python examples/xor.py [--quick] [--out out] [--seed 0] [--seeds N]
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from common import command_line, figure, parse, report, save

import gpunet
from gpunet.losses import BinaryCrossEntropy
from gpunet.nn import Dense, Sequential, Sigmoid, Tanh
from gpunet.optim import SGD

INPUTS = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
TARGETS = np.array([[0], [1], [1], [0]], dtype=np.float32)
HIDDEN, LR, STEPS = 4, 0.5, 1000


def train_xor(seed: int, steps: int = STEPS) -> tuple[Sequential, list[float]]:
    """Train a 2-4-1 tanh/sigmoid network on XOR; returns it and the loss of every step."""
    gpunet.seed(seed)
    model = Sequential(Dense(2, HIDDEN), Tanh(), Dense(HIDDEN, 1), Sigmoid())
    loss_fn = BinaryCrossEntropy()
    optimizer = SGD(model.parameters(), lr=LR)
    x, y = gpunet.asarray(INPUTS), gpunet.asarray(TARGETS)
    losses = []
    for _ in range(steps):
        loss = loss_fn(model(x), y)  # forward propagation
        optimizer.zero_grad()
        model.backward(loss_fn.backward())  # backward propagation
        optimizer.step()
        losses.append(loss)
    return model, [float(gpunet.to_numpy(loss)) for loss in losses]


def outputs(model: Sequential, points: np.ndarray = INPUTS) -> np.ndarray:
    """The network's outputs at ``points`` (n, 2), as a NumPy column (n, 1)."""
    return gpunet.to_numpy(model(gpunet.asarray(points.astype(np.float32))))


def solved(predictions: np.ndarray) -> bool:
    """Every output on the right side of 0.5."""
    return bool(np.all((predictions > 0.5) == (TARGETS > 0.5)))


def plot(model: Sequential, losses: list[float], out: Path) -> Path:
    fig = figure(9.5, 4)
    curve, regions = fig.subplots(1, 2)
    curve.plot(np.arange(1, len(losses) + 1), losses)
    curve.set(
        xlabel="full-batch gradient step",
        ylabel="binary cross-entropy",
        yscale="log",
        title="training loss",
    )
    grid = np.linspace(-0.5, 1.5, 201)
    gx, gy = np.meshgrid(grid, grid)
    surface = outputs(model, np.stack([gx.ravel(), gy.ravel()], axis=1)).reshape(gx.shape)
    shade = regions.contourf(gx, gy, surface, levels=np.linspace(0, 1, 11), cmap="RdBu_r")
    regions.contour(gx, gy, surface, levels=[0.5], colors="black", linewidths=1.5)
    for (x1, x2), target in zip(INPUTS, TARGETS[:, 0], strict=True):
        regions.scatter(
            x1, x2, s=120, c="white" if target == 0 else "black", edgecolors="black", zorder=3
        )
    regions.set(
        xlabel="x1",
        ylabel="x2",
        aspect="equal",
        title="output (black line: 0.5); dots: targets 0 white, 1 black",
    )
    regions.title.set_fontsize(9)
    fig.colorbar(shade, ax=regions, label="network output")
    return save(fig, out, "xor.png")


def main(argv: Sequence[str] | None = None) -> None:
    parser = command_line(__doc__, "count the seeds that solve XOR over 10 seeds, not 100")
    parser.add_argument(
        "--seeds",
        type=int,
        default=None,
        help="count how many of this many seeds solve XOR (default: 100, 10 with --quick)",
    )
    args = parse(parser, argv)
    if args.seeds is None:
        args.seeds = 10 if args.quick else 100
    if args.seeds < 1:
        parser.error(f"--seeds must be at least 1, got {args.seeds}")

    print(f"backend: {gpunet.backend.name()}")
    model, losses = train_xor(args.seed)
    predictions = outputs(model)
    print(f"2-{HIDDEN}-1 network, tanh + sigmoid, SGD lr {LR}, {STEPS} full-batch steps")
    print(" x1  x2 | target | output")
    for (x1, x2), target, output in zip(INPUTS, TARGETS[:, 0], predictions[:, 0], strict=True):
        print(f"  {x1:.0f}   {x2:.0f} |   {target:.0f}    | {output:.4f}")
    print(f"final loss: {losses[-1]:.5f}; solved: {solved(predictions)}")
    wins = sum(solved(outputs(train_xor(seed)[0])) for seed in range(args.seeds))
    print(f"solved in {wins} of {args.seeds} seeds (seeds 0..{args.seeds - 1})")
    plot(model, losses, args.out)
    report(
        outputs=[round(float(v), 4) for v in predictions[:, 0]],
        loss=losses[-1],
        solved=solved(predictions),
        seeds=args.seeds,
        seeds_solved=wins,
    )


if __name__ == "__main__":
    main()
