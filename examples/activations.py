"""Activation functions, their derivatives by backpropagation, and what they do in training.

Each activation layer is run forward on a grid of inputs to draw f(x), and backward with
an upstream gradient of ones to draw f'(x): backpropagation through one layer is
multiplication by the derivative. A central finite difference checks every derivative.
What the pictures show:

* sigmoid, tanh and softsign saturate: their slopes fall toward 0 for large |x|, and the
  sigmoid's slope is at most 1/4, so every sigmoid layer shrinks the backward signal;
* ReLU, leaky ReLU (slope 0.1 below zero here) and softplus keep a slope of 1 for
  positive inputs; leaky ReLU and softplus also pass some gradient below zero;
* softmax turns a vector of scores into probabilities that sum to 1; dividing the
  scores by a temperature above 1 flattens them, below 1 sharpens them.

Then the same deep MLP (8 Dense layers of width 32) learns scikit-learn's 8x8 digits
once with each elementwise activation (Xavier initialisation for the saturating ones,
He for the rectifiers), same optimizer and epochs: in a network this deep the sigmoid
barely learns, the others do.

    python examples/activations.py [--quick] [--out out] [--seed 0]
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from common import command_line, figure, parse, report, save
from digits import load_split

import gpunet
from gpunet.losses import CrossEntropy
from gpunet.nn import Dense, LeakyReLU, ReLU, Sequential, Sigmoid, Softmax, Softplus, Softsign, Tanh
from gpunet.optim import SGD

# name -> (layer factory, initialisation of the Dense layers before it, line style)
ACTIVATIONS = {
    "sigmoid": (Sigmoid, "xavier_uniform", "-"),
    "tanh": (Tanh, "xavier_uniform", "-"),
    "softsign": (Softsign, "xavier_uniform", "--"),
    "ReLU": (ReLU, "he_uniform", "-"),
    "leaky ReLU": (lambda: LeakyReLU(0.1), "he_uniform", "--"),
    "softplus": (Softplus, "he_uniform", ":"),
}
SATURATING, RECTIFYING = ("sigmoid", "tanh", "softsign"), ("ReLU", "leaky ReLU", "softplus")
COLORS = dict(
    zip(
        ACTIVATIONS,
        ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"],
        strict=True,
    )
)
DEPTH, WIDTH = 8, 32
SCORES = np.array([2.0, 1.0, 0.2, -1.0])
TEMPERATURES = (0.5, 1.0, 3.0)


def curve(name: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """f(x) by forward, f'(x) by backward, and the worst gap to a finite difference."""
    make, _, _ = ACTIVATIONS[name]
    layer = make().astype("float64")
    inputs = gpunet.asarray(x[:, None], dtype="float64")
    values = gpunet.to_numpy(layer(inputs))[:, 0]
    slopes = gpunet.to_numpy(
        layer.backward(gpunet.asarray(np.ones_like(x[:, None]), dtype="float64"))
    )[:, 0]
    h = 1e-6
    upper = gpunet.to_numpy(layer(gpunet.asarray(x[:, None] + h, dtype="float64")))[:, 0]
    lower = gpunet.to_numpy(layer(gpunet.asarray(x[:, None] - h, dtype="float64")))[:, 0]
    away_from_kinks = np.abs(x) > 10 * h  # ReLU and leaky ReLU have no slope at 0
    error = np.max(np.abs((upper - lower) / (2 * h) - slopes)[away_from_kinks])
    return values, slopes, float(error)


def softmax(scores: np.ndarray, temperature: float) -> np.ndarray:
    layer = Softmax().astype("float64")
    return gpunet.to_numpy(layer(gpunet.asarray(scores[None, :] / temperature, dtype="float64")))[0]


def train(name: str, data: tuple, epochs: int, seed: int) -> list[float]:
    """The deep MLP with one activation; its training loss per epoch."""
    x_train, _, y_train, _ = data
    make, weight_init, _ = ACTIVATIONS[name]
    gpunet.seed(seed)
    sizes = [64] + [WIDTH] * (DEPTH - 1) + [10]
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [Dense(n_in, n_out, init=weight_init), make()]
    model = Sequential(*layers[:-1])  # no activation after the last layer: logits
    history = gpunet.fit(
        model,
        CrossEntropy(),
        SGD(model.parameters(), lr=0.01, momentum=0.9),
        x_train,
        y_train,
        epochs=epochs,
        batch_size=32,
        verbose=0,
    )
    return history["loss"]


def plot(x: np.ndarray, curves: dict, losses: dict, out: Path) -> Path:
    fig = figure(15, 7.2)
    (saturating, rectifying, probabilities), (derivatives, rect_derivatives, training) = (
        fig.subplots(2, 3)
    )
    for names, values_ax, slopes_ax, kind in (
        (SATURATING, saturating, derivatives, "saturating"),
        (RECTIFYING, rectifying, rect_derivatives, "rectifying"),
    ):
        for name in names:
            values, slopes, _ = curves[name]
            style = {"color": COLORS[name], "ls": ACTIVATIONS[name][2], "lw": 2, "label": name}
            values_ax.plot(x, values, **style)
            slopes_ax.plot(x, slopes, **style)
        values_ax.set(xlabel="x", ylabel="f(x), by forward", title=f"{kind} activations")
        slopes_ax.set(xlabel="x", ylabel="f'(x), by backward", title=f"{kind}: derivatives")
        for ax in (values_ax, slopes_ax):
            ax.axhline(0, color="gray", lw=0.5)
            ax.axvline(0, color="gray", lw=0.5)
    derivatives.axhline(
        0.25, color=COLORS["sigmoid"], lw=0.8, ls=":", label="1/4, the sigmoid's largest slope"
    )
    for ax in (derivatives, rect_derivatives):
        ax.set_ylim(-0.05, 1.6)  # room above the slopes of 1 for the legend
    for ax in (saturating, rectifying, derivatives, rect_derivatives):
        ax.legend(loc="upper left", fontsize=8)
    positions = np.arange(len(SCORES))
    width = 0.8 / len(TEMPERATURES)
    for index, temperature in enumerate(TEMPERATURES):
        probabilities.bar(
            positions + (index - 1) * width,
            softmax(SCORES, temperature),
            width,
            label=f"softmax(scores / {temperature:g})",
        )
    probabilities.set(
        xticks=positions,
        xticklabels=[f"{s:g}" for s in SCORES],
        ylim=(0, 1),
        xlabel="score of each class",
        ylabel="probability (each set sums to 1)",
        title="softmax at three temperatures",
    )
    probabilities.legend(loc="upper right")
    for name, loss in losses.items():
        training.plot(
            np.arange(1, len(loss) + 1),
            loss,
            color=COLORS[name],
            ls=ACTIVATIONS[name][2],
            lw=2,
            label=name,
        )
    training.set(
        xlabel="epoch",
        ylabel="training loss (log scale)",
        yscale="log",
        title=f"{DEPTH}-layer MLP on digits, each activation",
    )
    training.xaxis.get_major_locator().set_params(integer=True)
    training.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return save(fig, out, "activations.png")


def main(argv: Sequence[str] | None = None) -> None:
    parser = command_line(__doc__, "8 epochs of training instead of 20")
    args = parse(parser, argv)
    epochs = 8 if args.quick else 20
    x = np.linspace(-5, 5, 401)
    curves = {name: curve(name, x) for name in ACTIVATIONS}
    print(f"backend: {gpunet.backend.name()}")
    print(
        f"{'activation':<12}{'max slope':>10}{'slope at -4':>12}{'slope at 4':>11}"
        f"{'|backward - finite diff|':>26}"
    )
    for name, (_, slopes, error) in curves.items():
        print(
            f"{name:<12}{slopes.max():>10.4f}{slopes[40]:>12.4f}{slopes[360]:>11.4f}{error:>26.1e}"
        )
    for temperature in TEMPERATURES:
        print(f"softmax({SCORES} / {temperature:g}) = {np.round(softmax(SCORES, temperature), 4)}")
    data = load_split()
    print(f"training: {DEPTH}-layer MLP of width {WIDTH}, SGD with momentum, {epochs} epochs")
    losses = {name: train(name, data, epochs, args.seed) for name in ACTIVATIONS}
    for name, loss in losses.items():
        print(f"{name:<12} training loss {loss[0]:.4f} -> {loss[-1]:.4f}")
    plot(x, curves, losses, args.out)
    report(
        max_slope={name: float(c[1].max()) for name, c in curves.items()},
        derivative_error=max(c[2] for c in curves.values()),
        softmax_sums=[float(softmax(SCORES, t).sum()) for t in TEMPERATURES],
        final_loss={name: loss[-1] for name, loss in losses.items()},
    )


if __name__ == "__main__":
    main()
