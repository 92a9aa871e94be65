"""Regularisation against overfitting: L1, L2, dropout, augmentation, early stopping.

A large MLP (64-256-256-10) learns from only 150 of scikit-learn's 8x8 digits, so it
memorises them: 100% training accuracy, a clear gap to the test accuracy. Each of the
course's cures is then applied on its own, from the same initial weights:

* L1 and L2 penalties on the weights (``Dense(..., regularizer=...)``; ``fit`` adds the
  penalty to the loss);
* dropout: 20% of the input pixels and half of each hidden layer's units
  (``gpunet.nn.Dropout``);
* data augmentation: each batch shifted by up to a pixel and given a little noise, on the
  device (``fit(..., augment=...)``);
* early stopping on a validation set (``gpunet.callbacks.EarlyStopping``, restoring the
  best epoch's weights).

The table printed at the end has train accuracy, test accuracy and their gap for each;
the bar chart is saved as a PNG. The penalties and dropout narrow the gap mostly by
keeping the training accuracy down; augmentation shows the network more varied data;
early stopping's main gain is the epochs it saves.

    python examples/regularization.py [--quick] [--out out]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import gpunet
from gpunet.callbacks import EarlyStopping
from gpunet.data import augment
from gpunet.losses import CrossEntropy
from gpunet.nn import Dense, Dropout, Flatten, ReLU, Sequential
from gpunet.optim import Adam
from gpunet.regularizers import L1, L2

TRAIN_SIZE = 150
VARIANTS = ("none", "L1", "L2", "dropout", "augmentation", "early stopping")


def load_digits() -> tuple[np.ndarray, ...]:
    """150 training images, 150 for validation and the rest for testing, as (N, 1, 8, 8)."""
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    x, y = sklearn_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    x_train, x_rest, y_train, y_rest = train_test_split(
        x, y, train_size=TRAIN_SIZE, stratify=y, random_state=0
    )
    x_val, x_test, y_val, y_test = train_test_split(
        x_rest, y_rest, train_size=TRAIN_SIZE, stratify=y_rest, random_state=0
    )
    return x_train, y_train, x_val, y_val, x_test, y_test


def build_model(variant: str) -> Sequential:
    """The large MLP, with the variant's penalty or dropout."""
    regularizer = {"L1": L1(3e-3), "L2": L2(1e-2)}.get(variant)
    dropout = variant == "dropout"
    p = 0.5 if dropout else 0.0
    layers = [Flatten(), Dropout(0.2 if dropout else 0.0)]
    layers += [Dense(64, 256, regularizer=regularizer), ReLU(), Dropout(p)]
    layers += [Dense(256, 256, regularizer=regularizer), ReLU(), Dropout(p)]
    layers += [Dense(256, 10, regularizer=regularizer)]
    return Sequential(*layers)


def train(variant: str, epochs: int, data: tuple) -> dict[str, float]:
    x_train, y_train, x_val, y_val, x_test, y_test = data
    gpunet.seed(0)
    model = build_model(variant)
    loss_fn = CrossEntropy()
    options: dict = {}
    if variant == "augmentation":
        options["augment"] = augment.Compose(augment.RandomShift(1), augment.GaussianNoise(0.1))
    if variant == "early stopping":
        options["validation_data"] = (x_val, y_val)
        options["callbacks"] = [EarlyStopping(monitor="val_loss", patience=2)]
    history = gpunet.fit(
        model, loss_fn, Adam(model.parameters(), lr=1e-3), x_train, y_train,
        epochs=epochs, batch_size=32, verbose=0, **options,
    )  # fmt: skip
    model.eval()
    train_acc = gpunet.evaluate(model, loss_fn, x_train, y_train)["accuracy"]
    test_acc = gpunet.evaluate(model, loss_fn, x_test, y_test)["accuracy"]
    return {"train": train_acc, "test": test_acc, "gap": train_acc - test_acc,
            "epochs": len(history)}  # fmt: skip


def plot(results: dict, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    positions = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar(positions - 0.2, [results[n]["train"] for n in names], 0.4, label="train")
    ax.bar(positions + 0.2, [results[n]["test"] for n in names], 0.4, label="test")
    ax.set_xticks(positions, names)
    ax.set(ylim=(0.5, 1.02), ylabel="accuracy",
           title=f"large MLP on {TRAIN_SIZE} digits: train vs test")  # fmt: skip
    ax.legend()
    path = out / "regularization.png"
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="40 epochs instead of 200")
    parser.add_argument("--out", type=Path, default=Path("out"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    epochs = 40 if args.quick else 200

    data = load_digits()
    print(
        f"backend: {gpunet.backend.name()}; {TRAIN_SIZE} training digits, "
        f"{len(data[4])} test digits, up to {epochs} epochs"
    )
    print(f"{'variant':<15} {'epochs':>6} {'train_acc':>9} {'test_acc':>9} {'gap':>7}")
    results = {}
    for variant in VARIANTS:
        r = results[variant] = train(variant, epochs, data)
        print(
            f"{variant:<15} {r['epochs']:>6} {r['train']:>9.4f} {r['test']:>9.4f} {r['gap']:>7.4f}"
        )
    print(f"saved {plot(results, args.out)}")


if __name__ == "__main__":
    main()
