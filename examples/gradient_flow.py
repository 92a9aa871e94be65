"""Vanishing and exploding gradients, seen with GradientMonitor and cured.

Vanishing: two 10-layer MLPs (width 32) learn scikit-learn's 8x8 digits with the same
optimizer. One uses sigmoids and a naive initialisation (N(0, 0.1**2) weights); the
other ReLUs and He initialisation. ``GradientMonitor`` records every layer's gradient
norm; in the sigmoid stack the first layer gets gradients orders of magnitude smaller
than the last (each sigmoid multiplies the backward signal by at most 1/4, each small
weight matrix shrinks it further), so the first layers barely learn, while the He/ReLU
stack keeps the norms of one order and learns. The cure is the initialisation and the
activation together.

Exploding: a 12-layer ReLU stack initialised with orthogonal weights of gain 1.8 sends
backward signals that grow layer by layer. Trained by plain SGD (lr 0.01) on a small
regression task, its first step is far too large, the next gradient larger still, and
within a few steps the numbers overflow to inf or NaN. The same run with
``clip_grad_norm`` (max norm 1) rescales each step's gradient to norm 1: it stays finite
and its loss falls.

Saves one PNG: the gradient norm of each layer (vanishing), and the total gradient norm
and the loss per step with and without clipping (exploding), the divergence marked.

    python examples/gradient_flow.py [--quick] [--out out] [--seed 0]
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from common import command_line, figure, parse, report, save

import gpunet
from gpunet import init
from gpunet.callbacks import GradientMonitor
from gpunet.losses import MSE, CrossEntropy
from gpunet.nn import Dense, ReLU, Sequential, Sigmoid
from gpunet.optim import SGD, clip_grad_norm

DEPTH, WIDTH = 10, 32
EXPLODING_DEPTH, GAIN, LR, MAX_NORM = 12, 1.8, 0.01, 1.0
STACKS = {
    "sigmoid, N(0, 0.1^2) init": (Sigmoid, functools.partial(init.normal, std=0.1)),
    "ReLU, He init": (ReLU, init.kaiming_normal),
}
CLIPPING = {"no clipping": math.inf, f"clip_grad_norm({MAX_NORM})": MAX_NORM}


def deep_mlp(activation: type, weight_init: object) -> Sequential:
    """DEPTH Dense layers: 64 -> WIDTH ... WIDTH -> 10, ``activation`` between them."""
    sizes = [64] + [WIDTH] * (DEPTH - 1) + [10]
    layers = []
    for index, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(Dense(n_in, n_out, init=weight_init))
        if index < DEPTH - 1:
            layers.append(activation())
    return Sequential(*layers)


def vanishing(epochs: int, seed: int) -> dict[str, dict]:
    """Train the sigmoid and the ReLU stack; per-layer mean gradient norms and accuracy."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    results = {}
    for name, (activation, weight_init) in STACKS.items():
        gpunet.seed(seed)
        model = deep_mlp(activation, weight_init)
        monitor = GradientMonitor()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # the ratio says it all
            history = gpunet.fit(
                model,
                CrossEntropy(),
                SGD(model.parameters(), lr=0.01, momentum=0.9),
                x,
                y,
                epochs=epochs,
                batch_size=64,
                callbacks=[monitor],
                verbose=0,
            )
        results[name] = {
            "norms": list(monitor.layer_norms().values()),
            "ratio": monitor.ratio(),
            "accuracy": history["accuracy"][-1],
        }
        print(
            f"{name:<28} first/last layer gradient-norm ratio {monitor.ratio():.2e}, "
            f"train accuracy {history['accuracy'][-1]:.4f}"
        )
    return results


def exploding_stack() -> Sequential:
    orthogonal = functools.partial(init.orthogonal, gain=GAIN)
    layers = []
    for _ in range(EXPLODING_DEPTH):
        layers += [Dense(16, 16, init=orthogonal), ReLU()]
    return Sequential(*layers[:-1], Dense(16, 1))


def exploding(steps: int, seed: int) -> dict[str, dict]:
    """The exploding stack trained without and with clipping: norm and loss per step.

    A run stops at the first loss or gradient norm that is not finite; ``diverged`` is
    the step at which that happened (None if the run stayed finite).
    """
    rng = np.random.default_rng(seed)
    x = gpunet.asarray(rng.standard_normal((128, 16)))
    y = gpunet.asarray(np.sin(rng.standard_normal((128, 1))))
    results = {}
    for label, max_norm in CLIPPING.items():
        gpunet.seed(seed)
        model = exploding_stack()
        loss_fn, optimizer = MSE(), SGD(model.parameters(), lr=LR)
        monitor = GradientMonitor(high=100)
        losses, norms, diverged = [], [], None
        with warnings.catch_warnings(record=True) as caught, np.errstate(all="ignore"):
            warnings.simplefilter("always", RuntimeWarning)
            for step in range(1, steps + 1):
                loss = float(gpunet.to_numpy(loss_fn(model(x), y)))
                optimizer.zero_grad()
                model.backward(loss_fn.backward())
                monitor.record(model)
                # the total norm before clipping; with max_norm = inf nothing is clipped
                norm = float(gpunet.to_numpy(clip_grad_norm(model.parameters(), max_norm)))
                if not (math.isfinite(loss) and math.isfinite(norm)):
                    diverged = step
                    break
                losses.append(loss)
                norms.append(norm)
                optimizer.step()
        warned = sum("exploding" in str(w.message) for w in caught)
        results[label] = {"loss": losses, "norm": norms, "diverged": diverged}
        end = f"inf or NaN at step {diverged}" if diverged else f"{losses[-1]:.3g} after {steps}"
        print(
            f"{label:<20} gradient norm at step 1 {norms[0]:.3g} (GradientMonitor warned "
            f"of {warned} exploding layers), loss {losses[0]:.3g} -> {end}"
        )
    return results


def plot(vanished: dict, exploded: dict, out: Path) -> Path:
    fig = figure(14, 4.4)
    layers, norms, losses = fig.subplots(1, 3)
    for name, result in vanished.items():
        layers.plot(range(1, len(result["norms"]) + 1), result["norms"], "o-", label=name)
    layers.set(
        xlabel="layer (1 = first)",
        ylabel="mean gradient norm (log scale)",
        yscale="log",
        title="vanishing: gradient norm per layer",
    )
    layers.legend(loc="lower right")
    colors = {"no clipping": "tab:red", f"clip_grad_norm({MAX_NORM})": "tab:blue"}
    for label, result in exploded.items():
        steps = np.arange(1, len(result["loss"]) + 1)
        for ax, key in ((norms, "norm"), (losses, "loss")):
            ax.plot(steps, result[key], "o-", ms=3, color=colors[label], label=label)
            if result["diverged"]:
                ax.axvline(result["diverged"], color=colors[label], ls=":", lw=1.5)
                # an X near the top of the panel: the value itself cannot be drawn
                ax.plot(
                    [result["diverged"]],
                    [0.95],
                    "X",
                    color=colors[label],
                    ms=11,
                    transform=ax.get_xaxis_transform(),
                    label=f"{label}: inf/NaN at step {result['diverged']}",
                )
    norms.axhline(MAX_NORM, color="gray", ls="--", lw=1, label=f"max norm {MAX_NORM}")
    norms.set(
        xscale="log",
        yscale="log",
        xlabel="step (log scale)",
        ylabel="total gradient norm before clipping (log)",
        title="exploding: gradient norm per step",
    )
    losses.set(
        xscale="log",
        yscale="log",
        xlabel="step (log scale)",
        ylabel="MSE (log scale)",
        title="exploding: loss per step",
    )
    fig.legend(
        *norms.get_legend_handles_labels(), loc="outside upper right", ncols=2, frameon=False
    )
    return save(fig, out, "gradient_flow.png")


def main(argv: Sequence[str] | None = None) -> None:
    parser = command_line(__doc__, "5 epochs and 100 steps instead of 20 and 300")
    args = parse(parser, argv)
    epochs, steps = (5, 100) if args.quick else (20, 300)
    print(
        f"backend: {gpunet.backend.name()}; vanishing: {DEPTH}-layer MLPs of width {WIDTH} "
        f"on digits, {epochs} epochs"
    )
    vanished = vanishing(epochs, args.seed)
    print(
        f"exploding: {EXPLODING_DEPTH}-layer ReLU stack, orthogonal init with gain {GAIN}, "
        f"SGD lr {LR}, up to {steps} steps"
    )
    exploded = exploding(steps, args.seed)
    plot(vanished, exploded, args.out)
    report(
        vanishing={
            name: {"ratio": r["ratio"], "accuracy": r["accuracy"]} for name, r in vanished.items()
        },
        exploding={
            label: {
                "diverged": r["diverged"],
                "first_norm": r["norm"][0],
                "first_loss": r["loss"][0],
                "last_loss": r["loss"][-1],
                "steps": len(r["loss"]),
            }
            for label, r in exploded.items()
        },
    )


if __name__ == "__main__":
    main()
