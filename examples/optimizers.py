"""Seven optimizers on one network, and their paths on the Rosenbrock valley.

The same MLP (64-64-10, ReLU, same initial weights) is trained on scikit-learn's 8x8
digits with SGD, SGD with momentum, Nesterov momentum, Adagrad, RMSprop, Adam and AdamW;
the script prints each one's final training loss, test accuracy and time, and saves the
loss curves. Then each optimizer walks the Rosenbrock function
f(x, y) = (1 - x)**2 + 100 (y - x**2)**2 from (-1.5, 2); the paths are saved as a second
PNG: plain SGD crawls along the curved valley, momentum and the adaptive methods reach
the minimum at (1, 1) far sooner.

    python examples/optimizers.py [--quick] [--out out]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
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
    "RMSprop": (optim.RMSprop, {"lr": 1e-3}, {"lr": 1e-2}),
    "Adam": (optim.Adam, {"lr": 2e-3}, {"lr": 5e-2}),
    "AdamW": (optim.AdamW, {"lr": 2e-3, "weight_decay": 1e-2}, {"lr": 5e-2, "weight_decay": 0}),
}
START = (-1.5, 2.0)


def train_on_digits(name: str, epochs: int, data: tuple) -> dict:
    """Train the MLP with one optimizer; its loss curve, test accuracy and time."""
    x_train, x_test, y_train, y_test = data
    cls, options, _ = OPTIMIZERS[name]
    gpunet.seed(0)  # the same initial weights and batch order for every optimizer
    model = Sequential(Dense(64, 64, init="he_uniform"), ReLU(), Dense(64, 10))
    loss_fn = CrossEntropy()
    start = time.perf_counter()
    history = gpunet.fit(
        model, loss_fn, cls(model.parameters(), **options), x_train, y_train,
        epochs=epochs, batch_size=32, metrics=(), verbose=0,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    test = gpunet.evaluate(model, loss_fn, x_test, y_test, batch_size=512)
    return {"loss": history["loss"], "test_accuracy": test["accuracy"], "seconds": seconds}


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
    path = [point.data]
    for _ in range(steps):
        point.grad = rosenbrock_gradient(point.data)
        opt.step()
        path.append(gpunet.backend.namespace(point.data).asarray(point.data, copy=True))
    return np.stack([gpunet.to_numpy(p) for p in path])


def plot(results: dict, paths: dict, out: Path) -> tuple[Path, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, result in results.items():
        ax.plot(range(1, len(result["loss"]) + 1), result["loss"], label=name)
    ax.set(xlabel="epoch", ylabel="training loss", yscale="log", title="digits MLP")
    ax.legend()
    curves = out / "optimizers_loss.png"
    fig.savefig(curves, dpi=120, bbox_inches="tight")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 5.5))
    xs, ys = np.meshgrid(np.linspace(-2, 2, 300), np.linspace(-1, 3, 300))
    ax.contour(xs, ys, np.log1p((1 - xs) ** 2 + 100 * (ys - xs**2) ** 2), levels=25, cmap="gray")
    for name, path in paths.items():
        ax.plot(path[:, 0], path[:, 1], label=name, lw=1.2)
    ax.plot([1], [1], "k*", ms=12)
    ax.set(xlim=(-2, 2), ylim=(-1, 3), title="paths on the Rosenbrock function")
    ax.legend(loc="lower right")
    paths_png = out / "optimizers_rosenbrock.png"
    fig.savefig(paths_png, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return curves, paths_png


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 epochs and 1500 steps")
    parser.add_argument("--out", type=Path, default=Path("out"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    epochs, steps = (8, 1500) if args.quick else (40, 3000)

    data = load_split()
    print(f"backend: {gpunet.backend.name()}; digits MLP 64-64-10, {epochs} epochs, batch 32")
    print(f"{'optimizer':<10} {'final_loss':>10} {'test_acc':>9} {'time_s':>7} {'rosen_dist':>10}")
    results, paths = {}, {}
    for name in OPTIMIZERS:
        results[name] = train_on_digits(name, epochs, data)
        paths[name] = rosenbrock_path(name, steps)
        distance = float(np.hypot(*(paths[name][-1] - 1.0)))
        r = results[name]
        print(
            f"{name:<10} {r['loss'][-1]:>10.4f} {r['test_accuracy']:>9.4f} "
            f"{r['seconds']:>7.2f} {distance:>10.4f}"
        )
    for png in plot(results, paths, args.out):
        print(f"saved {png}")


if __name__ == "__main__":
    main()
