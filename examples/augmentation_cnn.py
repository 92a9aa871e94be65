"""Data augmentation on a small training set: a CNN with and without it.

A small CNN learns from 15% of the digits training split (about 200 images), twice:
once on the images as they are, once on randomly shifted and rotated copies drawn
afresh for every batch (``gpunet.data.augment``: ``RandomShift(1)`` and
``RandomRotation(10)``). Both runs start from the same initial weights and take the same
updates.

The scikit-learn digits are centred and upright, so on their own test images the plain
network does nearly as well. Handwriting met elsewhere is not: the script therefore also
tests on a second copy of the test set in which every digit is shifted by up to a pixel
and rotated by up to 10 degrees (drawn once, the same for both networks). There the
network that never saw a moved digit loses much of its accuracy, and the augmented one
keeps most of it: augmentation teaches invariances the small data set cannot show.
Accuracies are the mean over three seeds. Saves a PNG of a few training images, their
augmented versions and the test accuracies.

    python examples/augmentation_cnn.py [--quick] [--out out] [--seed 0]
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from common import command_line, figure, mean, parse, report, save, seeds
from digits import load_split

import gpunet
from gpunet.data.augment import Compose, RandomRotation, RandomShift
from gpunet.losses import CrossEntropy
from gpunet.nn import Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential
from gpunet.optim import Adam

FRACTION = 0.15
SEEDS = 3
MOVED_TEST_SEED = 2024  # the draw of the shifted and rotated test set


def augmentation() -> Compose:
    return Compose(RandomShift(1), RandomRotation(10))


def build_model() -> Sequential:
    """8x8 -> 4x4 -> 2x2 feature maps, then a linear classifier."""
    return Sequential(
        Conv2D(1, 16, 3, padding=1), ReLU(), MaxPool2D(2),
        Conv2D(16, 32, 3, padding=1), ReLU(), MaxPool2D(2),
        Flatten(), Dense(32 * 2 * 2, 10),
    )  # fmt: skip


def train(x: np.ndarray, y: np.ndarray, epochs: int, augment, seed: int) -> Sequential:
    gpunet.seed(seed)  # the same initial weights and batch order for both runs
    model = build_model()
    optimizer = Adam(model.parameters(), lr=3e-3)
    gpunet.fit(
        model,
        CrossEntropy(),
        optimizer,
        x,
        y,
        epochs=epochs,
        batch_size=16,
        augment=augment,
        verbose=0,
    )
    return model


def accuracy(model: Sequential, x: np.ndarray, y: np.ndarray) -> float:
    logits = gpunet.to_numpy(gpunet.predict(model, x, batch_size=256))
    return float(np.mean(np.argmax(logits, axis=1) == y))


def moved(x: np.ndarray) -> np.ndarray:
    """``x`` with every image shifted and rotated once, by a fixed random draw."""
    gpunet.seed(MOVED_TEST_SEED)
    return gpunet.to_numpy(augmentation()(gpunet.asarray(x)))


def plot(originals: np.ndarray, augmented: np.ndarray, results: dict, out: Path) -> Path:
    fig = figure(11, 3.4)
    images, bars = fig.subfigures(1, 2, width_ratios=(3, 2))
    axes = images.subplots(2, len(originals))
    for column, (before, after) in enumerate(zip(originals, augmented, strict=True)):
        for row, image in enumerate((before, after)):
            axes[row, column].imshow(image[0], cmap="gray_r", vmin=0, vmax=1)
            axes[row, column].set(xticks=[], yticks=[])
    axes[0, 0].set_ylabel("original")
    axes[1, 0].set_ylabel("augmented")
    images.suptitle("training images, and one random shift and rotation of each")
    ax = bars.subplots()
    positions = np.arange(2)
    for offset, (name, label) in zip(
        (-0.2, 0.2),
        (("plain", "without augmentation"), ("augmented", "with augmentation")),
        strict=True,
    ):
        values = [results[name]["test"], results[name]["moved_test"]]
        drawn = ax.bar(positions + offset, values, 0.4, label=label)
        ax.bar_label(drawn, fmt="%.3f", fontsize=8)
    ax.set(
        xticks=positions,
        xticklabels=["test set", "test set shifted\nand rotated"],
        ylim=(0, 1.1),
        ylabel=f"test accuracy (mean of {SEEDS} seeds)",
    )
    bars.legend(*ax.get_legend_handles_labels(), loc="outside upper center", ncols=1, frameon=False)
    return save(fig, out, "augmentation_cnn.png")


def main(argv: Sequence[str] | None = None) -> None:
    parser = command_line(__doc__, "40 epochs instead of 100")
    args = parse(parser, argv)
    x_train, x_test, y_train, y_test = load_split(images=True)
    keep = np.random.default_rng(0).permutation(len(x_train))[: int(FRACTION * len(x_train))]
    x_small, y_small = x_train[keep], y_train[keep]
    x_moved = moved(x_test)
    epochs = 40 if args.quick else 100
    print(
        f"backend: {gpunet.backend.name()}; {len(x_small)} training images, {epochs} epochs, "
        f"mean of seeds {seeds(args.seed, SEEDS)}"
    )
    runs: dict[str, list] = {"plain": [], "augmented": []}
    for seed in seeds(args.seed, SEEDS):
        for name, augment in (("plain", None), ("augmented", augmentation())):
            model = train(x_small, y_small, epochs, augment, seed)
            runs[name].append(
                {
                    "test": accuracy(model, x_test, y_test),
                    "moved_test": accuracy(model, x_moved, y_test),
                }
            )
    results = {
        name: {key: mean([run[key] for run in r]) for key in r[0]} for name, r in runs.items()
    }
    print(f"{'':<22}{'test':>8}{'shifted+rotated test':>22}")
    for name, label in (("plain", "without augmentation"), ("augmented", "with augmentation")):
        print(f"{label:<22}{results[name]['test']:>8.4f}{results[name]['moved_test']:>22.4f}")
    gpunet.seed(args.seed)
    sample = gpunet.to_numpy(augmentation()(gpunet.asarray(x_small[:8])))
    plot(x_small[:8], sample, results, args.out)
    report(
        **{
            name: {
                "test": round(r["test"], 4),
                "moved_test": round(r["moved_test"], 4),
                "moved_test_per_seed": [round(run["moved_test"], 4) for run in runs[name]],
            }
            for name, r in results.items()
        }
    )


if __name__ == "__main__":
    main()
