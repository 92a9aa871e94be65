"""Batch, stochastic and mini-batch gradient descent on the same model and data.

One small MLP (64-32-10, ReLU) learns scikit-learn's 8x8 digits three times from the
same initial weights, changing only how many samples each update sees:

* batch: the whole training set per update (one update per epoch);
* stochastic: one random sample per update (as many updates as samples);
* mini-batch: 32 samples per update.

Each mode trains until the loss over the whole training set falls below a target
(checked after every epoch). Batch descent needs by far the most epochs: one update per
pass over the data. Stochastic descent needs the fewest epochs but the most time: each
of its updates pays the fixed cost of a whole step (the layers' calls, the optimizer)
for a single sample. Mini-batch descent needs few epochs and little time, which is why
it is the default everywhere. (On 1,347 samples one full-batch update is cheap, so batch
descent is quick in seconds here too; its updates grow with the data set, and a data
set that does not fit in memory at once cannot be trained that way at all.)

What is timed: the training updates only (forward, backward, optimizer step), not the
loss checks between epochs, after a warm-up that compiles each mode's kernels; the time
reported is the median of three identical runs. Saves one PNG with three panels: the
loss of each update's batch, and the training-set loss per epoch and per second.

    python examples/gradient_descent_modes.py [--quick] [--out out] [--seed 0]
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from common import command_line, figure, parse, report, save
from digits import load_split

import gpunet
from gpunet.data import batches
from gpunet.losses import CrossEntropy
from gpunet.nn import Dense, ReLU, Sequential
from gpunet.optim import SGD

# mode -> (batch size, learning rate): larger batches average away noise and take a larger lr
MODES = {"batch": (None, 0.5), "stochastic": (1, 0.01), "mini-batch": (32, 0.1)}
COLORS = {"batch": "tab:blue", "stochastic": "tab:orange", "mini-batch": "tab:green"}
REPEATS = 3  # timed runs per mode; the median is reported


def train(mode: str, data: tuple, target: float, max_epochs: int, seed: int) -> dict:
    """Train in one mode until the training-set loss is below ``target``.

    Returns the loss of every update's batch, the training-set loss after each epoch, the
    training seconds up to each epoch's end, and the test accuracy.
    """
    x_train, x_test, y_train, y_test = data
    batch_size, lr = MODES[mode]
    gpunet.seed(seed)
    model = Sequential(Dense(64, 32), ReLU(), Dense(32, 10))
    loss_fn = CrossEntropy()
    optimizer = SGD(model.parameters(), lr=lr)
    x_all, y_all = gpunet.asarray(x_train), gpunet.asarray(y_train)
    per_update, per_epoch, seconds = [], [], []
    clock = 0.0
    while len(per_epoch) < max_epochs and (not per_epoch or per_epoch[-1] > target):
        start = time.perf_counter()
        batch_losses = []
        for xb, yb in batches(x_train, y_train, batch_size=batch_size):
            batch_losses.append(loss_fn(model(xb), yb))
            optimizer.zero_grad()
            model.backward(loss_fn.backward())
            optimizer.step()
        gpunet.to_numpy(batch_losses[-1])  # waits for the device to finish the epoch
        clock += time.perf_counter() - start
        seconds.append(clock)
        per_update.extend(float(gpunet.to_numpy(loss)) for loss in batch_losses)
        per_epoch.append(float(gpunet.to_numpy(loss_fn(model(x_all), y_all))))
    logits = gpunet.to_numpy(model(gpunet.asarray(x_test)))
    accuracy = float(np.mean(np.argmax(logits, axis=1) == y_test))
    return {
        "per_update": per_update,
        "per_epoch": per_epoch,
        "seconds": seconds,
        "accuracy": accuracy,
    }


def warm_up(data: tuple) -> None:
    """A few updates in every mode, so that no timed run pays for compiling kernels."""
    x_train, _, y_train, _ = data
    for batch_size, lr in MODES.values():
        model = Sequential(Dense(64, 32), ReLU(), Dense(32, 10))
        loss_fn, optimizer = CrossEntropy(), SGD(model.parameters(), lr=lr)
        for step, (xb, yb) in enumerate(batches(x_train, y_train, batch_size=batch_size)):
            loss_fn(model(xb), yb)
            optimizer.zero_grad()
            model.backward(loss_fn.backward())
            optimizer.step()
            if step == 3:
                break


def reached(result: dict, target: float) -> bool:
    return result["per_epoch"][-1] <= target


def plot(results: dict, target: float, out: Path) -> Path:
    from matplotlib.lines import Line2D

    fig = figure(13, 4.4)
    by_update, by_epoch, by_time = fig.subplots(1, 3)
    for order, (mode, result) in enumerate(results.items()):
        color = COLORS[mode]
        updates = np.arange(1, len(result["per_update"]) + 1)
        # the stochastic curve is the noisiest: drawn first, underneath the others
        by_update.plot(
            updates,
            result["per_update"],
            color=color,
            lw=0.6,
            alpha=0.8,
            zorder=3 - order if mode != "stochastic" else 0,
        )
        epochs = np.arange(1, len(result["per_epoch"]) + 1)
        by_epoch.plot(epochs, result["per_epoch"], color=color, marker=".")
        by_time.plot(result["seconds"], result["per_epoch"], color=color, marker=".")
        if reached(result, target):
            for ax, x in ((by_epoch, epochs[-1]), (by_time, result["seconds"][-1])):
                ax.plot(x, result["per_epoch"][-1], "o", color=color, ms=10, mfc="none")
    by_update.set(
        xscale="log",
        yscale="log",
        xlabel="update (log scale)",
        ylabel="loss of the update's batch",
        title="each update's batch",
    )
    for ax in (by_epoch, by_time):
        ax.axhline(target, color="gray", ls="--", lw=1)
        ax.set(ylabel="loss on the whole training set", ylim=(0, None))
    by_epoch.set(xscale="log", xlabel="epoch (log scale)", title="per pass over the data")
    by_time.set(
        xscale="log",
        xlabel="training seconds (log scale; median of the runs)",
        title="per second of training",
    )
    handles = [
        Line2D([], [], color=COLORS[mode], marker=".", label=_label(mode, result, target))
        for mode, result in results.items()
    ]
    handles.append(Line2D([], [], color="gray", ls="--", label=f"target loss {target}"))
    handles.append(
        Line2D([], [], color="gray", marker="o", mfc="none", ls="none", label="target reached")
    )
    fig.legend(handles=handles, loc="outside upper center", ncols=3, frameon=False)
    return save(fig, out, "gradient_descent_modes.png")


def _label(mode: str, result: dict, target: float) -> str:
    batch = MODES[mode][0]
    size = "all samples" if batch is None else f"{batch} sample" + "s" * (batch > 1)
    if not reached(result, target):
        return f"{mode} ({size} per update): target not reached"
    return (
        f"{mode} ({size} per update): {len(result['per_epoch'])} epochs, "
        f"{result['seconds'][-1]:.2f} s"
    )


def median_run(runs: Sequence[dict]) -> dict:
    """The first run, with each epoch's cumulative seconds replaced by the median over runs."""
    result = dict(runs[0])
    result["seconds"] = [
        statistics.median(times) for times in zip(*(r["seconds"] for r in runs), strict=True)
    ]
    return result


def main(argv: Sequence[str] | None = None) -> None:
    parser = command_line(__doc__, "target loss 0.5 instead of 0.1")
    args = parse(parser, argv)
    target, max_epochs = (0.5, 400) if args.quick else (0.1, 3000)
    data = load_split()
    print(
        f"backend: {gpunet.backend.name()}; {len(data[0])} training samples; "
        f"target: training-set loss {target}"
    )
    warm_up(data)
    results = {}
    for mode in MODES:
        runs = [train(mode, data, target, max_epochs, args.seed) for _ in range(REPEATS)]
        results[mode] = median_run(runs)
    print(
        f"{'mode':<12}{'batch':>6}{'updates':>9}{'epochs':>8}{'seconds':>9}{'loss':>8}"
        f"{'test acc':>10}"
    )
    for mode, result in results.items():
        batch = MODES[mode][0] or len(data[0])
        print(
            f"{mode:<12}{batch:>6}{len(result['per_update']):>9}{len(result['per_epoch']):>8}"
            f"{result['seconds'][-1]:>9.3f}{result['per_epoch'][-1]:>8.4f}"
            f"{result['accuracy']:>10.4f}"
        )
    print(f"seconds: training updates only, after a warm-up, median of {REPEATS} runs")
    plot(results, target, args.out)
    report(
        target=target,
        **{
            mode: {
                "epochs": len(r["per_epoch"]),
                "updates": len(r["per_update"]),
                "seconds": round(r["seconds"][-1], 4),
                "loss": round(r["per_epoch"][-1], 4),
                "reached": reached(r, target),
                "test_accuracy": r["accuracy"],
            }
            for mode, r in results.items()
        },
    )


if __name__ == "__main__":
    main()
