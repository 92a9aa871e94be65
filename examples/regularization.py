"""Regularisation against overfitting: L1, L2, dropout, augmentation, early stopping.

A large MLP (64-256-256-10) learns from 200 of scikit-learn's 8x8 digits, a fifth of
whose labels are wrong, as in data labelled in a hurry. Without regularisation the
network has the capacity to memorise every label, the wrong ones too: its training
accuracy reaches about 100% while its test accuracy (on correctly labelled digits) stays
far below, a wide gap. (With clean labels the same network overfits too, but on digits
this easy the memorising costs little test accuracy, and the cures have little to
show.) Each of the course's cures is then applied on its own, from the same initial
weights:

* L1 and L2 penalties on the weights (``Dense(..., regularizer=...)``; ``fit`` adds the
  penalty to the loss);
* dropout: 20% of the input pixels and half of each hidden layer's units
  (``gpunet.nn.Dropout``);
* data augmentation: each batch shifted by up to a pixel and given a little noise, on the
  device (``fit(..., augment=...)``);
* early stopping on a validation set labelled the same way as the training set
  (``gpunet.callbacks.EarlyStopping``, restoring the best epoch's weights).

Every cure makes the network reproduce fewer of the wrong labels: its training accuracy
stays lower (toward the 80% of labels that are right), its test accuracy rises, and the
train-test gap narrows. Each number is the mean over three seeds (initial weights, batch
order, dropout masks, augmentations). The table has train and test accuracy, their gap
and the share of wrong training labels the network reproduces; the picture shows them.

    python examples/regularization.py [--quick] [--out out] [--seed 0]
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from common import command_line, figure, mean, parse, report, save, seeds

import gpunet
from gpunet.callbacks import EarlyStopping
from gpunet.data import augment
from gpunet.losses import CrossEntropy
from gpunet.nn import Dense, Dropout, Flatten, ReLU, Sequential
from gpunet.optim import Adam
from gpunet.regularizers import L1, L2

TRAIN_SIZE = 200
WRONG_LABELS = 0.2  # the share of training and validation labels replaced by a wrong one
VARIANTS = ("none", "L1", "L2", "dropout", "augmentation", "early stopping")
SEEDS = 3


def load_digits() -> dict[str, np.ndarray]:
    """200 training and 200 validation images with noisy labels, the rest for testing.

    Images are (N, 1, 8, 8) in [0, 1]. ``wrong`` marks the training images whose label
    was replaced (by another digit drawn at random, the same draw every run); the test
    labels are the true ones.
    """
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
    rng = np.random.default_rng(0)
    noisy_train, wrong = _mislabel(y_train, rng)
    noisy_val, _ = _mislabel(y_val, rng)
    return {
        "x_train": x_train,
        "y_train": noisy_train,
        "wrong": wrong,
        "x_val": x_val,
        "y_val": noisy_val,
        "x_test": x_test,
        "y_test": y_test,
    }


def _mislabel(labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``labels`` with a share WRONG_LABELS replaced by another class; and which ones."""
    wrong = rng.random(len(labels)) < WRONG_LABELS
    shifted = (labels + rng.integers(1, 10, size=len(labels))) % 10  # never the true class
    return np.where(wrong, shifted, labels), wrong


def build_model(variant: str) -> Sequential:
    """The large MLP, with the variant's penalty or dropout."""
    regularizer = {"L1": L1(1e-3), "L2": L2(1e-2)}.get(variant)
    dropout = variant == "dropout"
    p = 0.5 if dropout else 0.0
    layers = [Flatten(), Dropout(0.2 if dropout else 0.0)]
    layers += [Dense(64, 256, regularizer=regularizer), ReLU(), Dropout(p)]
    layers += [Dense(256, 256, regularizer=regularizer), ReLU(), Dropout(p)]
    layers += [Dense(256, 10, regularizer=regularizer)]
    return Sequential(*layers)


def train(variant: str, epochs: int, data: dict, seed: int) -> dict[str, float]:
    """One run: train and test accuracy, their gap, wrong labels reproduced, epochs run."""
    gpunet.seed(seed)
    model = build_model(variant)
    loss_fn = CrossEntropy()
    options: dict = {}
    if variant == "augmentation":
        options["augment"] = augment.Compose(augment.RandomShift(1), augment.GaussianNoise(0.1))
    if variant == "early stopping":
        options["validation_data"] = (data["x_val"], data["y_val"])
        options["callbacks"] = [EarlyStopping(monitor="val_loss", patience=5)]
    history = gpunet.fit(
        model,
        loss_fn,
        Adam(model.parameters(), lr=1e-3),
        data["x_train"],
        data["y_train"],
        epochs=epochs,
        batch_size=32,
        verbose=0,
        **options,
    )
    model.eval()
    train_pred = _predict(model, data["x_train"])
    test_pred = _predict(model, data["x_test"])
    train_acc = float(np.mean(train_pred == data["y_train"]))
    test_acc = float(np.mean(test_pred == data["y_test"]))
    wrong = data["wrong"]
    memorised = float(np.mean(train_pred[wrong] == data["y_train"][wrong]))
    return {
        "train": train_acc,
        "test": test_acc,
        "gap": train_acc - test_acc,
        "memorised": memorised,
        "epochs": len(history),
    }


def _predict(model: Sequential, x: np.ndarray) -> np.ndarray:
    return np.argmax(gpunet.to_numpy(gpunet.predict(model, x, batch_size=512)), axis=1)


def plot(results: dict, out: Path) -> Path:
    fig = figure(11, 4.2)
    accuracy, memory = fig.subplots(1, 2, sharey=True, width_ratios=(3, 2))
    names = list(results)
    rows = np.arange(len(names))[::-1]  # the first variant on top
    accuracy.barh(rows + 0.2, [results[n]["train"] for n in names], 0.4, label="train accuracy")
    accuracy.barh(rows - 0.2, [results[n]["test"] for n in names], 0.4, label="test accuracy")
    accuracy.axvline(
        1 - WRONG_LABELS, color="black", ls="--", lw=1, label="share of right training labels"
    )
    accuracy.set(
        yticks=rows,
        yticklabels=names,
        xlim=(0.5, 1.0),
        xlabel=f"accuracy (mean of {SEEDS} seeds)",
        title="train and test accuracy",
    )
    memory.barh(rows, [results[n]["memorised"] for n in names], 0.5, color="tab:red")
    memory.set(
        xlim=(0, 1),
        xlabel="share of the wrong training labels reproduced",
        title="wrong labels memorised",
    )
    fig.legend(
        *accuracy.get_legend_handles_labels(), loc="outside upper center", ncols=3, frameon=False
    )
    return save(fig, out, "regularization.png")


def main(argv: Sequence[str] | None = None) -> None:
    parser = command_line(__doc__, "60 epochs instead of 200")
    args = parse(parser, argv)
    epochs = 60 if args.quick else 200
    data = load_digits()
    print(
        f"backend: {gpunet.backend.name()}; {TRAIN_SIZE} training digits "
        f"({int(data['wrong'].sum())} labelled wrong), {len(data['x_test'])} test digits; "
        f"up to {epochs} epochs; mean of seeds {seeds(args.seed, SEEDS)}"
    )
    print(
        f"{'variant':<15}{'epochs':>7}{'train acc':>10}{'test acc':>9}{'gap':>8}{'memorised':>10}"
    )
    results = {}
    for variant in VARIANTS:
        runs = [train(variant, epochs, data, seed) for seed in seeds(args.seed, SEEDS)]
        r = results[variant] = {key: mean([run[key] for run in runs]) for key in runs[0]}
        r["test_per_seed"] = [round(run["test"], 4) for run in runs]
        print(
            f"{variant:<15}{r['epochs']:>7.0f}{r['train']:>10.4f}{r['test']:>9.4f}"
            f"{r['gap']:>8.4f}{r['memorised']:>10.4f}"
        )
    plot(results, args.out)
    report(
        **{
            variant: {
                key: round(value, 4) if isinstance(value, float) else value
                for key, value in r.items()
            }
            for variant, r in results.items()
        }
    )


if __name__ == "__main__":
    main()
