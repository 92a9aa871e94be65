"""Handwritten digits with a small CNN: BatchNorm, max-pooling and random shifts.

scikit-learn's 8x8 digits with the split every gpunet example uses (stratified 75/25,
``random_state=0``), pixels scaled to [0, 1] and shaped (N, 1, 8, 8). Three 3x3
convolutions with BatchNorm and ReLU, two 2x2 max-pools and a Dense classifier are
trained by ``gpunet.fit`` with Adam, each batch shifted by up to one pixel
(``gpunet.data.augment.RandomShift``). Prints the test accuracy and the confusion
matrix, and saves PNGs of the misclassified test digits and of the first layer's
filters. Runs unchanged on a GPU with ``GPUNET_BACKEND=cupy``.

    python examples/digits_cnn.py [--quick] [--out out] [--seed 0]
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from common import command_line, figure, parse, report, save
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
    count = max(1, len(images))
    cols = min(count, 8)
    rows = (count + cols - 1) // cols
    fig = figure(1.3 * cols + 0.4, 1.5 * rows + 0.6)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, image, t, p in zip(axes, images, true, pred, strict=False):
        ax.imshow(image[0], cmap="gray_r", vmin=0, vmax=1)
        ax.set_title(f"true {t}, said {p}", fontsize=8)
    fig.suptitle(f"misclassified test digits ({len(images)})")
    paths = [save(fig, out, "digits_cnn_misclassified.png", dpi=100)]

    fig = figure(8, 4.4)
    limit = float(np.abs(filters).max())
    for ax, kernel in zip(fig.subplots(4, 8).ravel(), filters, strict=False):
        ax.imshow(kernel[0], cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.axis("off")
    fig.suptitle("first convolution's 32 filters, 3x3 (red positive, blue negative)")
    paths.append(save(fig, out, "digits_cnn_filters.png", dpi=100))
    return paths


def main(argv: Sequence[str] | None = None) -> None:
    parser = command_line(__doc__, "12 epochs instead of 40")
    args = parse(parser, argv)

    x_train, x_test, y_train, y_test = load_split(images=True)
    gpunet.seed(args.seed)
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
    print(
        f"trained {epochs} epochs in {seconds:.1f} s (compiling included); "
        f"last loss {history['loss'][-1]:.4f}"
    )

    logits = gpunet.predict(model, x_test, batch_size=256)
    pred = np.argmax(gpunet.to_numpy(logits), axis=1)
    accuracy = float(np.mean(pred == y_test))
    print("confusion matrix (rows: true digit, columns: predicted):")
    print(format_confusion(confusion_matrix(y_test, pred)))
    wrong = np.flatnonzero(pred != y_test)
    filters = gpunet.to_numpy(model[0].weight.data)
    save_pictures(args.out, x_test[wrong], y_test[wrong], pred[wrong], filters)
    print(f"test accuracy: {accuracy:.4f}")
    report(epochs=epochs, test_accuracy=accuracy, misclassified=len(wrong))


if __name__ == "__main__":
    main()
