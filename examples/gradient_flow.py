"""Vanishing and exploding gradients, seen with GradientMonitor and cured.

Vanishing: two 10-layer MLPs (width 32) learn scikit-learn's 8x8 digits with the same
optimizer. One uses sigmoids and a naive initialisation (N(0, 0.1**2) weights); the
other ReLUs and He initialisation. ``GradientMonitor`` records every layer's gradient
norm; in the sigmoid stack the first layer gets gradients orders of magnitude smaller
than the last (each sigmoid multiplies the backward signal by at most 1/4), so it barely
learns, while the He/ReLU stack keeps the norms of one order. The script prints the
first/last ratio of both and saves the per-layer norms as a PNG.

Exploding: a 12-layer ReLU stack initialised with orthogonal weights of gain 2.5 sends
backward signals that grow layer by layer; plain SGD on a regression task diverges,
while ``clip_grad_norm`` (max norm 1) keeps the same run finite and learning.

    python examples/gradient_flow.py [--quick] [--out out]
"""

from __future__ import annotations

import argparse
import functools
import math
import warnings
from pathlib import Path

import numpy as np

import gpunet
from gpunet import init
from gpunet.callbacks import GradientMonitor
from gpunet.losses import MSE, CrossEntropy
from gpunet.nn import Dense, ReLU, Sequential, Sigmoid
from gpunet.optim import SGD, clip_grad_norm

DEPTH, WIDTH = 10, 32


def deep_mlp(activation: type, weight_init: object) -> Sequential:
    """DEPTH Dense layers: 64 -> WIDTH ... WIDTH -> 10, ``activation`` between them."""
    sizes = [64] + [WIDTH] * (DEPTH - 1) + [10]
    layers = []
    for index, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(Dense(n_in, n_out, init=weight_init))
        if index < DEPTH - 1:
            layers.append(activation())
    return Sequential(*layers)


def vanishing(epochs: int) -> dict[str, GradientMonitor]:
    """Train the sigmoid and the ReLU stack; their monitors and final accuracies."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    stacks = {
        "sigmoid, N(0, 0.1^2) init": (Sigmoid, functools.partial(init.normal, std=0.1)),
        "ReLU, He init": (ReLU, init.kaiming_normal),
    }
    monitors = {}
    for name, (activation, weight_init) in stacks.items():
        gpunet.seed(0)
        model = deep_mlp(activation, weight_init)
        monitor = GradientMonitor()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # the ratio says it all
            history = gpunet.fit(
                model, CrossEntropy(), SGD(model.parameters(), lr=0.01, momentum=0.9), x, y,
                epochs=epochs, batch_size=64, callbacks=[monitor], verbose=0,
            )  # fmt: skip
        monitors[name] = monitor
        print(
            f"{name:<28} first/last layer gradient-norm ratio {monitor.ratio():.2e}, "
            f"train accuracy {history['accuracy'][-1]:.4f}"
        )
    return monitors


def exploding(steps: int) -> dict[str, list[float]]:
    """The same exploding stack trained without and with clip_grad_norm; loss curves."""
    rng = np.random.default_rng(0)
    x = gpunet.asarray(rng.standard_normal((128, 16)))
    y = gpunet.asarray(np.sin(rng.standard_normal((128, 1))))
    curves = {}
    for label, max_norm in (("no clipping", None), ("clip_grad_norm(1.0)", 1.0)):
        gpunet.seed(0)
        layers = []
        for n_in in [16] * 12:
            layers += [Dense(n_in, 16, init=functools.partial(init.orthogonal, gain=2.5)), ReLU()]
        model = Sequential(*layers[:-1], Dense(16, 1))
        loss_fn, optimizer = MSE(), SGD(model.parameters(), lr=0.01)
        monitor = GradientMonitor(high=1e3)
        losses = []
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RuntimeWarning)
            for _ in range(steps):
                loss = float(gpunet.to_numpy(loss_fn(model(x), y)))
                losses.append(loss)
                if not math.isfinite(loss):
                    break
                optimizer.zero_grad()
                model.backward(loss_fn.backward())
                monitor.record(model)
                if max_norm is not None:
                    clip_grad_norm(model.parameters(), max_norm)
                optimizer.step()
        exploding_layers = sum("exploding" in str(w.message) for w in caught)
        largest = max(max(v) for v in monitor.history.values())
        print(
            f"{label:<20} largest layer gradient norm {largest:.2e} "
            f"({exploding_layers} layers warned), loss {losses[0]:.3g} -> {losses[-1]:.3g} "
            f"after {len(losses)} steps"
        )
        curves[label] = losses
    return curves


def plot(monitors: dict, curves: dict, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, monitor in monitors.items():
        norms = list(monitor.layer_norms().values())
        left.plot(range(1, len(norms) + 1), norms, "o-", label=name)
    left.set(xlabel="layer (1 = first)", ylabel="mean gradient norm", yscale="log",
             title="vanishing gradients")  # fmt: skip
    left.legend()
    for label, losses in curves.items():
        finite = [v if math.isfinite(v) else np.nan for v in losses]
        right.plot(finite, label=label)
    right.set(xlabel="step", ylabel="MSE", yscale="log", title="exploding gradients")
    right.legend()
    path = out / "gradient_flow.png"
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 epochs and 100 steps")
    parser.add_argument("--out", type=Path, default=Path("out"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    epochs, steps = (5, 100) if args.quick else (20, 500)

    print(f"backend: {gpunet.backend.name()}; {DEPTH}-layer MLPs of width {WIDTH} on digits")
    monitors = vanishing(epochs)
    print("exploding: 12-layer ReLU stack, orthogonal init with gain 2.5, SGD lr 0.01")
    curves = exploding(steps)
    print(f"saved {plot(monitors, curves, args.out)}")


if __name__ == "__main__":
    main()
