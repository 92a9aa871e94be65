"""Seven optimizers on one network, and their paths on the Rosenbrock valley.

The same MLP (64-64-10, ReLU) is trained on scikit-learn's 8x8 digits with SGD, SGD with
momentum, Nesterov momentum, Adagrad, RMSprop, Adam and AdamW, from the same initial
weights and batch order for each optimizer, averaged over three seeds. Momentum and the
adaptive methods reach a lower training loss than plain SGD in the same epochs.

Then each optimizer walks the Rosenbrock function f(x, y) = (1 - x)**2 + 100 (y - x**2)**2
from (-1.5, 2). Its minimum (1, 1) lies at the end of a long, curved, nearly flat
valley: plain SGD crawls along it, momentum builds up speed, and the adaptive methods
rescale each coordinate's step (Adam arrives first). AdamW's weight decay (0.01) pulls
toward the origin and settles short of the minimum: decay changes the function minimised.

Times: each optimizer is warmed up (one epoch on a scratch model compiles its kernels)
before the timed runs; the time printed is the median epoch time over all its epochs.

    python examples/optimizers.py [--quick] [--out out] [--seed 0]
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from common import command_line, figure, mean, parse, report, save, seeds
from digits import load_split

import gpunet
from gpunet import optim
from gpunet.losses import CrossEntropy
from gpunet.nn import Dense, Parameter, ReLU, Sequential

# name -> (optimizer class, options on the digits, options on Rosenbrock)
OPTIMIZERS = {
    "SGD": (optim.SGD, {"lr": 0.1}, {"lr": 1e-3}),
    "Momentum": (optim.SGD, {"lr": 0.05, "momentum": 0.9}, {"lr": 2e-4, "momentum": 0.9}),
    "Nesterov": (
        optim.SGD,
        {"lr": 0.05, "momentum": 0.9, "nesterov": True},
        {"lr": 2e-4, "momentum": 0.9, "nesterov": True},
    ),
    "Adagrad": (optim.Adagrad, {"lr": 0.05}, {"lr": 0.5}),
    "RMSprop": (optim.RMSprop, {"lr": 3e-3}, {"lr": 1e-2}),
    "Adam": (optim.Adam, {"lr": 5e-3}, {"lr": 5e-2}),
    "AdamW": (optim.AdamW, {"lr": 5e-3, "weight_decay": 1e-2}, {"lr": 5e-2, "weight_decay": 1e-2}),
}
# the two panels of the loss picture; a dashed line is drawn over a solid one
MOMENTUM_FAMILY, ADAPTIVE = ("SGD", "Momentum", "Nesterov"), ("Adagrad", "RMSprop", "Adam", "AdamW")
DASHED = ("Nesterov", "AdamW")
COLORS = dict(
    zip(
        OPTIMIZERS,
        ["black", "tab:blue", "tab:cyan", "tab:green", "tab:purple", "tab:red", "tab:orange"],
        strict=True,
    )
)
START, MINIMUM = (-1.5, 2.0), (1.0, 1.0)
SEEDS = 3


def new_model() -> Sequential:
    return Sequential(Dense(64, 64, init="he_uniform"), ReLU(), Dense(64, 10))


def train_on_digits(name: str, epochs: int, data: tuple, seed: int) -> dict:
    """Train the MLP with one optimizer from seed ``seed``: loss curve, accuracy, epoch times."""
    x_train, x_test, y_train, y_test = data
    cls, options, _ = OPTIMIZERS[name]
    gpunet.seed(seed)  # the same initial weights and batch order for every optimizer
    model = new_model()
    loss_fn = CrossEntropy()
    history = gpunet.fit(
        model,
        loss_fn,
        cls(model.parameters(), **options),
        x_train,
        y_train,
        epochs=epochs,
        batch_size=32,
        metrics=(),
        verbose=0,
    )
    test = gpunet.evaluate(model, loss_fn, x_test, y_test, batch_size=512)
    return {
        "loss": history["loss"],
        "test_accuracy": test["accuracy"],
        "epoch_time": history.epoch_time,
    }


def warm_up(name: str, data: tuple) -> None:
    """One epoch on a scratch model: compiles the kernels this optimizer's step uses."""
    cls, options, _ = OPTIMIZERS[name]
    model = new_model()
    gpunet.fit(
        model,
        CrossEntropy(),
        cls(model.parameters(), **options),
        data[0],
        data[2],
        epochs=1,
        batch_size=32,
        metrics=(),
        verbose=0,
    )


def rosenbrock_gradient(point: object) -> object:
    """Gradient of (1 - x)**2 + 100 (y - x**2)**2 at ``point = (x, y)``, on the device."""
    xp = gpunet.backend.namespace(point)
    x, y = point[0], point[1]
    return xp.stack([-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)])


def rosenbrock_path(name: str, steps: int) -> np.ndarray:
    """The points one optimizer visits from START, shape (steps + 1, 2)."""
    cls, _, options = OPTIMIZERS[name]
    point = Parameter(gpunet.asarray(START, dtype="float64"))
    opt = cls([point], **options)
    path = [gpunet.to_numpy(point.data).copy()]  # a copy: the step updates in place
    for _ in range(steps):
        point.grad = rosenbrock_gradient(point.data)
        opt.step()
        path.append(gpunet.to_numpy(point.data).copy())
    return np.stack(path)


def distances(path: np.ndarray) -> np.ndarray:
    return np.hypot(path[:, 0] - MINIMUM[0], path[:, 1] - MINIMUM[1])


def plot_losses(results: dict, out: Path) -> Path:
    fig = figure(11, 4.2)
    for ax, names, title in zip(
        fig.subplots(1, 2, sharey=True),
        (MOMENTUM_FAMILY, ADAPTIVE),
        ("plain SGD and momentum", "adaptive step sizes"),
        strict=True,
    ):
        if "SGD" not in names:
            ax.plot(
                _epochs(results["SGD"]),
                results["SGD"]["loss"],
                color="gray",
                lw=1,
                label="SGD (for reference)",
            )
        for name in names:
            ax.plot(
                _epochs(results[name]),
                results[name]["loss"],
                color=COLORS[name],
                ls="--" if name in DASHED else "-",
                lw=2,
                label=name,
            )
        ax.set(xlabel="epoch", yscale="log", title=title)
        ax.legend(loc="upper right")
    fig.axes[0].set_ylabel(f"training loss (mean of {SEEDS} seeds, log scale)")
    return save(fig, out, "optimizers_loss.png")


def _epochs(result: dict) -> np.ndarray:
    return np.arange(1, len(result["loss"]) + 1)


def plot_paths(paths: dict, out: Path) -> Path:
    fig = figure(13, 6.4)
    axes = fig.subplots(2, 4).ravel()
    xs, ys = np.meshgrid(np.linspace(-2, 2, 300), np.linspace(-1, 3, 300))
    levels = np.log1p((1 - xs) ** 2 + 100 * (ys - xs**2) ** 2)
    steps = len(next(iter(paths.values()))) - 1
    for ax, (name, path) in zip(axes, paths.items(), strict=False):
        ax.contour(xs, ys, levels, levels=20, cmap="gray", linewidths=0.6)
        ax.plot(path[:, 0], path[:, 1], color=COLORS[name], lw=1.2)
        ax.plot(path[::25, 0], path[::25, 1], ".", color=COLORS[name], ms=3)
        ax.plot(*START, "o", color="black", ms=6)
        ax.plot(*MINIMUM, "*", color="gold", mec="black", ms=13)
        ax.set(
            xlim=(-2, 2),
            ylim=(-1, 3),
            xlabel="x",
            ylabel="y",
            title=f"{name}: {distances(path)[-1]:.3g} from (1, 1)",
        )
    ax = axes[-1]
    for name, path in paths.items():
        ax.plot(distances(path), color=COLORS[name], ls="--" if name in DASHED else "-", label=name)
    ax.set(
        xlabel="step", ylabel="distance to (1, 1)", yscale="log", title="distance to the minimum"
    )
    fig.legend(*ax.get_legend_handles_labels(), loc="outside right center", frameon=False)
    fig.suptitle(
        f"Rosenbrock function, {steps} steps from (-1.5, 2) (black dot); "
        "minimum at the star; a dot every 25 steps"
    )
    return save(fig, out, "optimizers_rosenbrock.png")


def main(argv: Sequence[str] | None = None) -> None:
    parser = command_line(__doc__, "8 epochs and 1500 Rosenbrock steps instead of 40 and 3000")
    args = parse(parser, argv)
    epochs, steps = (8, 1500) if args.quick else (40, 3000)
    data = load_split()
    print(
        f"backend: {gpunet.backend.name()}; digits MLP 64-64-10, {epochs} epochs, batch 32, "
        f"mean of seeds {seeds(args.seed, SEEDS)}"
    )
    print(f"{'optimizer':<10}{'final loss':>11}{'test acc':>10}{'ms/epoch':>10}{'rosen dist':>12}")
    results, paths = {}, {}
    for name in OPTIMIZERS:
        warm_up(name, data)
        runs = [train_on_digits(name, epochs, data, seed) for seed in seeds(args.seed, SEEDS)]
        results[name] = {
            "loss": [mean(values) for values in zip(*(run["loss"] for run in runs), strict=True)],
            "test_accuracy": mean([run["test_accuracy"] for run in runs]),
            "epoch_ms": 1000 * statistics.median(t for run in runs for t in run["epoch_time"]),
        }
        paths[name] = rosenbrock_path(name, steps)
        r = results[name]
        r["distance"] = float(distances(paths[name])[-1])
        print(
            f"{name:<10}{r['loss'][-1]:>11.4f}{r['test_accuracy']:>10.4f}"
            f"{r['epoch_ms']:>10.1f}{r['distance']:>12.4f}"
        )
    print("ms/epoch: median over every epoch of the three runs, after a warm-up epoch")
    plot_losses(results, args.out)
    plot_paths(paths, args.out)
    report(
        **{
            name: {
                "loss": round(r["loss"][-1], 4),
                "test_accuracy": round(r["test_accuracy"], 4),
                "epoch_ms": round(r["epoch_ms"], 2),
                "distance": round(r["distance"], 5),
            }
            for name, r in results.items()
        }
    )


if __name__ == "__main__":
    main()
