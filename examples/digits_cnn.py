"""Handwritten digits with a small CNN: BatchNorm, max-pooling and random shifts.

scikit-learn's 8x8 digits with the split every gpunet example uses (stratified 75/25,
``random_state=0``), pixels scaled to [0, 1] and shaped (N, 1, 8, 8). Three 3x3
convolutions with BatchNorm and ReLU, two 2x2 max-pools and a Dense classifier are
trained by ``gpunet.fit`` with Adam, each batch shifted by up to one pixel
(``gpunet.data.augment.RandomShift``). Prints the test accuracy and the confusion
matrix, and saves PNGs of the misclassified test digits and of the first layer's
filters. Runs unchanged on a GPU with ``GPUNET_BACKEND=cupy``.

    python examples/digits_cnn.py [--quick] [--out out]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from digits import load_split

import gpunet
from gpunet.data.augment import RandomShift
from gpunet.losses import CrossEntropy
from gpunet.nn import BatchNorm2D, Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential
from gpunet.optim import Adam


def build_model() -> Sequential:
    """8x8 -> 8x8 -> 4x4 -> 2x2 feature maps, then a linear classifier."""
    return Sequential(
        Conv2D(1, 32, 3, padding=1), BatchNorm2D(32), ReLU(),
        Conv2D(32, 32, 3, padding=1), BatchNorm2D(32), ReLU(), MaxPool2D(2),
        Conv2D(32, 64, 3, padding=1), BatchNorm2D(64), ReLU(), MaxPool2D(2),
        Flatten(), Dense(64 * 2 * 2, 10),
    )  # fmt: skip


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, classes: int = 10) -> np.ndarray:
    """Counts ``[true, predicted]``."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def format_confusion(matrix: np.ndarray) -> str:
    header = "true\\pred " + " ".join(f"{c:>4d}" for c in range(matrix.shape[1]))
    rows = [f"{t:>9d} " + " ".join(f"{v:>4d}" for v in row) for t, row in enumerate(matrix)]
    return "\n".join([header, *rows])


def save_pictures(
    out: Path, images: np.ndarray, true: np.ndarray, pred: np.ndarray, filters: np.ndarray
) -> list[Path]:
    """PNGs of the misclassified digits and of the first layer's filters."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = [out / "digits_cnn_misclassified.png", out / "digits_cnn_filters.png"]
    count = max(1, len(images))
    cols = min(count, 8)
    rows = (count + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(1.4 * cols, 1.6 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, t, p in zip(axes.flat, images, true, pred, strict=False):
        ax.imshow(image[0], cmap="gray_r")
        ax.set_title(f"{t} as {p}", fontsize=9)
    fig.suptitle(f"misclassified test digits ({len(images)})")
    fig.savefig(paths[0], dpi=100, bbox_inches="tight")
    plt.close(fig)

    fig, axes = plt.subplots(4, 8, figsize=(8, 4.2))
    for ax, kernel in zip(axes.flat, filters, strict=False):
        ax.imshow(kernel[0], cmap="RdBu_r", vmin=-np.abs(kernel).max(), vmax=np.abs(kernel).max())
        ax.axis("off")
    fig.suptitle("first convolution's 3x3 filters")
    fig.savefig(paths[1], dpi=100, bbox_inches="tight")
    plt.close(fig)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="12 epochs instead of 40")
    parser.add_argument("--out", type=Path, default=Path("out"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    x_train, x_test, y_train, y_test = load_split(images=True)
    gpunet.seed(0)
    model = build_model()
    loss_fn = CrossEntropy()
    optimizer = Adam(model.parameters(), lr=2e-3)
    epochs = 12 if args.quick else 40
    start = time.perf_counter()
    history = gpunet.fit(
        model,
        loss_fn,
        optimizer,
        x_train,
        y_train,
        epochs=epochs,
        batch_size=32,
        augment=RandomShift(1),
        verbose=0,
    )
    seconds = time.perf_counter() - start
    print(f"backend: {gpunet.backend.name()}; {len(x_train)} training images")
    print(f"trained {epochs} epochs in {seconds:.1f} s; last loss {history['loss'][-1]:.4f}")

    logits = gpunet.predict(model, x_test, batch_size=256)
    pred = np.argmax(gpunet.to_numpy(logits), axis=1)
    accuracy = float(np.mean(pred == y_test))
    print("confusion matrix (rows: true digit, columns: predicted):")
    print(format_confusion(confusion_matrix(y_test, pred)))
    wrong = np.flatnonzero(pred != y_test)
    filters = gpunet.to_numpy(model[0].weight.data)
    for path in save_pictures(args.out, x_test[wrong], y_test[wrong], pred[wrong], filters):
        print(f"saved {path}")
    print(f"test accuracy: {accuracy:.4f}")


if __name__ == "__main__":
    main()
