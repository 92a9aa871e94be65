"""Batch, stochastic and mini-batch gradient descent on the same model and data.

Trains one small MLP on scikit-learn's 8x8 digits three times from the same initial
weights, changing only how many samples each update sees:

* batch: the whole training set per update (one update per epoch);
* stochastic: one random sample per update (as many updates as samples);
* mini-batch: 32 samples per update.

Saves one PNG with the loss per update and per epoch for each mode, and prints the
time each took and the test accuracy it reached.

    python examples/gradient_descent_modes.py [--quick] [--out out]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from digits import load_split

import gpunet
from gpunet.data import batches
from gpunet.losses import CrossEntropy
from gpunet.nn import Dense, ReLU, Sequential
from gpunet.optim import SGD

# mode -> (batch_size, learning rate): larger batches average away noise and take a larger lr
MODES = {"batch": (None, 0.5), "stochastic": (1, 0.01), "mini-batch": (32, 0.1)}


def train(mode: str, data: tuple, epochs: int) -> dict:
    """Train from the seed-0 initial weights in one mode; returns its loss curves."""
    x_train, x_test, y_train, y_test = data
    batch_size, lr = MODES[mode]
    gpunet.seed(0)
    model = Sequential(Dense(64, 32), ReLU(), Dense(32, 10))
    loss_fn = CrossEntropy()
    optimizer = SGD(model.parameters(), lr=lr)
    per_update, per_epoch = [], []
    start = time.perf_counter()
    for _ in range(epochs):
        epoch_losses = []
        for xb, yb in batches(x_train, y_train, batch_size=batch_size):
            loss = loss_fn(model(xb), yb)
            optimizer.zero_grad()
            model.backward(loss_fn.backward())
            optimizer.step()
            epoch_losses.append(loss)
        losses = [float(gpunet.to_numpy(value)) for value in epoch_losses]
        per_update.extend(losses)
        per_epoch.append(float(np.mean(losses)))
    seconds = time.perf_counter() - start
    logits = gpunet.to_numpy(model(gpunet.asarray(x_test)))
    accuracy = float(np.mean(np.argmax(logits, axis=1) == y_test))
    return {
        "per_update": per_update,
        "per_epoch": per_epoch,
        "seconds": seconds,
        "accuracy": accuracy,
        "updates": len(per_update),
    }


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (by_update, by_epoch) = plt.subplots(1, 2, figsize=(11, 4))
    for mode, result in results.items():
        label = f"{mode} ({result['seconds']:.1f} s)"
        by_update.plot(
            np.arange(1, result["updates"] + 1),
            result["per_update"],
            label=label,
            alpha=0.8,
            linewidth=0.8,
        )
        by_epoch.plot(np.arange(1, len(result["per_epoch"]) + 1), result["per_epoch"], label=label)
    by_update.set(
        xscale="log", yscale="log", xlabel="update", ylabel="training loss", title="loss per update"
    )
    by_epoch.set(yscale="log", xlabel="epoch", ylabel="mean training loss", title="loss per epoch")
    by_epoch.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 epochs instead of 20")
    parser.add_argument("--out", type=Path, default=Path("out"))
    args = parser.parse_args()
    epochs = 3 if args.quick else 20
    data = load_split()
    results = {mode: train(mode, data, epochs) for mode in MODES}
    print(f"backend: {gpunet.backend.name()}; {epochs} epochs of {len(data[0])} samples")
    print(f"{'mode':<12}{'batch':>7}{'updates':>9}{'seconds':>9}{'final loss':>12}{'test acc':>10}")
    for mode, result in results.items():
        batch = MODES[mode][0] or len(data[0])
        print(
            f"{mode:<12}{batch:>7}{result['updates']:>9}{result['seconds']:>9.2f}"
            f"{result['per_epoch'][-1]:>12.4f}{result['accuracy']:>10.4f}"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "gradient_descent_modes.png"
    plot(results, path)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
