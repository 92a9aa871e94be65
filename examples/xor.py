"""XOR: the smallest network that solves it, trained by full-batch gradient descent.

A single layer cannot separate XOR; one hidden layer of tanh units can. Prints the
truth table with the network's outputs.

    python examples/xor.py            # one run, seed 0
    python examples/xor.py --seeds 100  # how many of 100 seeds succeed
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import gpunet
from gpunet.losses import BinaryCrossEntropy
from gpunet.nn import Dense, Sequential, Sigmoid, Tanh
from gpunet.optim import SGD

INPUTS = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
TARGETS = np.array([[0], [1], [1], [0]], dtype=np.float32)
HIDDEN, LR, STEPS = 4, 0.5, 1000


def train_xor(seed: int, steps: int = STEPS) -> tuple[np.ndarray, float]:
    """Train a 2-4-1 tanh/sigmoid network on XOR; returns its outputs and final loss."""
    gpunet.seed(seed)
    model = Sequential(Dense(2, HIDDEN), Tanh(), Dense(HIDDEN, 1), Sigmoid())
    loss_fn = BinaryCrossEntropy()
    optimizer = SGD(model.parameters(), lr=LR)
    x, y = gpunet.asarray(INPUTS), gpunet.asarray(TARGETS)
    for _ in range(steps):
        loss = loss_fn(model(x), y)
        optimizer.zero_grad()
        model.backward(loss_fn.backward())
        optimizer.step()
    return gpunet.to_numpy(model(x)), float(gpunet.to_numpy(loss))


def solved(outputs: np.ndarray) -> bool:
    """Every output on the right side of 0.5."""
    return bool(np.all((outputs > 0.5) == (TARGETS > 0.5)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, default=1, help="count successes over this many")
    parser.add_argument("--quick", action="store_true", help="(already quick; accepted)")
    args = parser.parse_args()

    print(f"backend: {gpunet.backend.name()}")
    start = time.perf_counter()
    outputs, loss = train_xor(args.seed)
    print(f"2-{HIDDEN}-1 network, tanh + sigmoid, SGD lr {LR}, {STEPS} full-batch steps")
    print(" x1  x2 | target | output")
    for (x1, x2), target, output in zip(INPUTS, TARGETS[:, 0], outputs[:, 0], strict=True):
        print(f"  {x1:.0f}   {x2:.0f} |   {target:.0f}    | {output:.4f}")
    print(f"final loss: {loss:.5f}; solved: {solved(outputs)}; {time.perf_counter() - start:.2f} s")
    if args.seeds > 1:
        wins = sum(solved(train_xor(seed)[0]) for seed in range(args.seeds))
        print(f"solved in {wins} of {args.seeds} seeds")


if __name__ == "__main__":
    main()
