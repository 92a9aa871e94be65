"""Handwritten digits with an MLP trained by ``gpunet.fit``.

scikit-learn's 8x8 digits (1,797 images, pixels scaled to [0, 1]), a stratified 75/25
train/test split, and from the training part a validation split that drives
EarlyStopping (which restores the best epoch's weights) and ModelCheckpoint (which keeps
that epoch on disk). Prints the history table, reloads the checkpoint into a fresh model
to show it holds the same network, prints the test accuracy and saves the learning
curves as a PNG.

    python examples/digits_mlp.py [--quick] [--out out] [--seed 0]
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
from common import command_line, parse, report
from digits import load_split

import gpunet
from gpunet.callbacks import EarlyStopping, ModelCheckpoint
from gpunet.losses import CrossEntropy
from gpunet.nn import Dense, ReLU, Sequential
from gpunet.optim import Adam


def build_model() -> Sequential:
    return Sequential(Dense(64, 128), ReLU(), Dense(128, 64), ReLU(), Dense(64, 10))


def main(argv: Sequence[str] | None = None) -> None:
    parser = command_line(__doc__, "at most 12 epochs instead of 100")
    args = parse(parser, argv)
    checkpoint_path = args.out / "digits_mlp.safetensors"

    x_train, x_test, y_train, y_test = load_split()
    gpunet.seed(args.seed)
    model = build_model()
    loss_fn = CrossEntropy()
    optimizer = Adam(model.parameters(), lr=1e-3)
    start = time.perf_counter()
    history = gpunet.fit(
        model,
        loss_fn,
        optimizer,
        x_train,
        y_train,
        epochs=12 if args.quick else 100,
        batch_size=32,
        validation_split=0.1,
        callbacks=[
            EarlyStopping(monitor="val_loss", patience=15),
            ModelCheckpoint(checkpoint_path, monitor="val_loss"),
        ],
        verbose=0,
    )
    seconds = time.perf_counter() - start

    print(
        f"backend: {gpunet.backend.name()}; {len(x_train)} training images, "
        "10% of them for validation"
    )
    print(history.table())
    best = int(np.argmin(history["val_loss"]))
    print(f"trained {len(history)} epochs in {seconds:.1f} s; best val_loss at epoch {best + 1}")

    reloaded = build_model()
    meta = gpunet.load(checkpoint_path, reloaded)
    test = gpunet.evaluate(model, loss_fn, x_test, y_test, batch_size=256)
    again = gpunet.evaluate(reloaded, loss_fn, x_test, y_test, batch_size=256)
    print(
        f"checkpoint {checkpoint_path} (epoch {meta['epoch'] + 1}) reloaded: "
        f"test accuracy {again['accuracy']:.4f}"
    )
    print(f"test loss: {test['loss']:.4f}")
    print(f"test accuracy: {test['accuracy']:.4f}")
    curves = gpunet.plot.history(
        history, args.out / "digits_mlp_curves.png", title="digits MLP, gpunet.fit"
    )
    print(f"saved {curves}")
    report(
        epochs=len(history),
        best_epoch=best + 1,
        test_loss=test["loss"],
        test_accuracy=test["accuracy"],
        reloaded_accuracy=again["accuracy"],
    )


if __name__ == "__main__":
    main()
