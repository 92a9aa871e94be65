"""Callbacks: EarlyStopping, ModelCheckpoint, LearningRateScheduler, CSVLogger, TerminateOnNaN."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

import gpunet
from gpunet import backend
from gpunet.callbacks import (
    Callback,
    CSVLogger,
    EarlyStopping,
    LearningRateScheduler,
    ModelCheckpoint,
    TerminateOnNaN,
)
from gpunet.callbacks.terminate_on_nan import first_nonfinite_gradient
from gpunet.losses import CrossEntropy
from gpunet.nn import Dense, ReLU, Sequential
from gpunet.optim import SGD


def mlp():
    return Sequential(Dense(4, 8), ReLU(), Dense(8, 3))


def data(rng, n=40):
    x = rng.normal(size=(n, 4))
    return x, (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0)


def weights(model):
    return {name: backend.to_numpy(value).copy() for name, value in model.state_dict().items()}


class WeightsAfterEachEpoch(Callback):
    def on_train_begin(self, logs=None):
        self.snapshots = []

    def on_epoch_end(self, epoch, logs=None):
        self.snapshots.append(weights(self.model))


def drive(callback, model, values, monitor="val_loss"):
    """Run a callback through epochs whose monitored numbers are ``values``; the model's
    first bias is set to the epoch index so restored weights tell which epoch they are."""
    callback.model, callback.optimizer = model, SGD(model.parameters(), lr=0.1)
    trainer = type("FakeTrainer", (), {"stop_training": False, "log_names": [monitor]})()
    callback.trainer = trainer
    callback.on_train_begin({})
    stopped = None
    for epoch, value in enumerate(values):
        callback.on_epoch_begin(epoch, {})
        model[0].bias.data = backend.asarray(np.full(8, float(epoch)))
        callback.on_epoch_end(epoch, {monitor: value})
        if trainer.stop_training:
            stopped = epoch
            break
    callback.on_train_end({})
    return stopped


# --------------------------------------------------------------------------- EarlyStopping


def test_early_stopping_waits_patience_epochs_and_restores_the_best():
    model = mlp()
    stopper = EarlyStopping(patience=2)
    stopped = drive(stopper, model, [1.0, 0.5, 0.6, 0.7, 0.4, 0.3])
    assert stopped == 3 and stopper.stopped_epoch == 3
    assert stopper.best == 0.5 and stopper.best_epoch == 1
    np.testing.assert_array_equal(backend.to_numpy(model[0].bias.data), np.full(8, 1.0))


def test_early_stopping_min_delta_mode_and_no_restore():
    model = mlp()
    stopper = EarlyStopping(
        monitor="val_accuracy", patience=1, min_delta=0.05, restore_best_weights=False
    )
    assert drive(stopper, model, [0.5, 0.56, 0.6, 0.62], monitor="val_accuracy") == 2
    assert stopper.best == 0.56 and stopper.best_epoch == 1
    np.testing.assert_array_equal(backend.to_numpy(model[0].bias.data), np.full(8, 2.0))
    # the same instance resets at the start of the next training
    assert drive(stopper, model, [0.1, 0.2], monitor="val_accuracy") is None
    assert stopper.best == 0.2 and stopper.stopped_epoch is None


def test_early_stopping_in_fit_restores_the_best_epoch(rng):
    x, y = data(rng)
    model = mlp()
    snapshots = WeightsAfterEachEpoch()
    # min_delta so large that only the first epoch counts as an improvement
    stopper = EarlyStopping(monitor="loss", patience=2, min_delta=100.0)
    history = gpunet.fit(
        model,
        CrossEntropy(),
        SGD(model.parameters(), lr=0.1),
        x,
        y,
        epochs=20,
        callbacks=[snapshots, stopper],
        verbose=0,
    )
    assert len(history) == 3 and stopper.stopped_epoch == 2
    for name, value in weights(model).items():
        np.testing.assert_array_equal(value, snapshots.snapshots[0][name])
    assert not np.array_equal(
        snapshots.snapshots[2]["0.weight"], snapshots.snapshots[0]["0.weight"]
    )


def test_missing_monitor_says_what_is_available_before_training(rng):
    x, y = data(rng)
    model = mlp()
    optimizer = SGD(model.parameters(), lr=0.1)
    with pytest.raises(
        ValueError,
        match=r"EarlyStopping: monitored value 'val_loss' is not logged \(pass validation_data "
        r"or validation_split to fit\); available: loss, accuracy",
    ):
        gpunet.fit(model, CrossEntropy(), optimizer, x, y, epochs=3, callbacks=[EarlyStopping()])
    assert optimizer.step_count == 0
    with pytest.raises(ValueError, match="EarlyStopping: monitored value 'val_acc' is not logged"):
        EarlyStopping(monitor="val_acc").on_epoch_end(0, {"loss": 1.0})


def test_early_stopping_rejects_bad_arguments():
    with pytest.raises(ValueError, match="EarlyStopping: patience must be >= 0, got -1"):
        EarlyStopping(patience=-1)
    with pytest.raises(
        ValueError, match="EarlyStopping: mode must be 'auto', 'min' or 'max', got 'up'"
    ):
        EarlyStopping(mode="up")
    with pytest.raises(
        ValueError,
        match=r"EarlyStopping: min_delta must be a finite number in \[0, inf\), got -0.1",
    ):
        EarlyStopping(min_delta=-0.1)


# --------------------------------------------------------------------------- ModelCheckpoint


def test_checkpoint_saves_only_improvements(tmp_path):
    model = mlp()
    checkpoint = ModelCheckpoint(tmp_path / "ck-{epoch}-{val_loss:.1f}.safetensors")
    drive(checkpoint, model, [0.5, 0.7, 0.3, 0.3])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ck-1-0.5.safetensors",
        "ck-3-0.3.safetensors",
    ]
    assert checkpoint.last_path == str(tmp_path / "ck-3-0.3.safetensors")
    fresh = mlp()
    meta = gpunet.load(checkpoint.last_path, fresh, SGD(fresh.parameters(), lr=1.0))
    assert meta == {"epoch": 2, "logs": {"val_loss": 0.3}}
    np.testing.assert_array_equal(backend.to_numpy(fresh[0].bias.data), np.full(8, 2.0))


def test_checkpoint_every_epoch_overwrites_one_file(tmp_path, rng):
    x, y = data(rng)
    model = mlp()
    path = tmp_path / "last.safetensors"
    checkpoint = ModelCheckpoint(path, save_best_only=False, save_optimizer=False)
    gpunet.fit(
        model,
        CrossEntropy(),
        SGD(model.parameters(), lr=0.1),
        x,
        y,
        epochs=3,
        callbacks=[checkpoint],
        verbose=0,
    )
    assert [p.name for p in tmp_path.iterdir()] == ["last.safetensors"]
    fresh = mlp()
    assert gpunet.load(path, fresh)["epoch"] == 2
    for name, value in weights(model).items():
        np.testing.assert_array_equal(weights(fresh)[name], value)


def test_checkpoint_into_a_missing_directory_fails_before_training(tmp_path, rng):
    x, y = data(rng)
    model = mlp()
    optimizer = SGD(model.parameters(), lr=0.1)
    checkpoint = ModelCheckpoint(tmp_path / "missing" / "m.safetensors", monitor="loss")
    with pytest.raises(
        FileNotFoundError, match=r"ModelCheckpoint: directory .*missing does not exist"
    ):
        gpunet.fit(model, CrossEntropy(), optimizer, x, y, epochs=2, callbacks=[checkpoint])
    assert optimizer.step_count == 0


# --------------------------------------------------------------------------- scheduler, CSV


def test_learning_rate_scheduler_sets_and_logs_the_rate(rng, tmp_path):
    x, y = data(rng)
    model = mlp()
    optimizer = SGD(model.parameters(), lr=1.0)
    history = gpunet.fit(
        model,
        CrossEntropy(),
        optimizer,
        x,
        y,
        epochs=3,
        verbose=0,
        callbacks=[LearningRateScheduler(lambda epoch: 0.1 / (epoch + 1))],
    )
    assert history["lr"] == pytest.approx([0.1, 0.05, 0.1 / 3])
    history = gpunet.fit(
        model,
        CrossEntropy(),
        optimizer,
        x,
        y,
        epochs=2,
        verbose=0,
        callbacks=[LearningRateScheduler(lambda epoch, lr: lr * 0.5)],
    )
    assert history["lr"] == pytest.approx([0.1 / 6, 0.1 / 12])
    assert optimizer.lr == pytest.approx(0.1 / 12)
    with pytest.raises(ValueError, match=r"LearningRateScheduler: fn\(0\) returned -1.0; a rate"):
        gpunet.fit(
            model,
            CrossEntropy(),
            optimizer,
            x,
            y,
            epochs=1,
            callbacks=[LearningRateScheduler(lambda epoch: -1.0)],
        )


def test_csv_logger_writes_one_row_per_epoch(rng, tmp_path):
    x, y = data(rng)
    model = mlp()
    path = tmp_path / "log.csv"
    history = gpunet.fit(
        model,
        CrossEntropy(),
        SGD(model.parameters(), lr=0.1),
        x,
        y,
        epochs=3,
        validation_split=0.25,
        callbacks=[CSVLogger(path)],
        verbose=0,
    )
    rows = list(csv.DictReader(path.read_text().splitlines()))
    assert list(rows[0]) == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy"]
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    assert [float(r["val_loss"]) for r in rows] == history["val_loss"]
    gpunet.fit(
        model,
        CrossEntropy(),
        SGD(model.parameters(), lr=0.1),
        x,
        y,
        epochs=2,
        validation_split=0.25,
        callbacks=[CSVLogger(path, append=True)],
        verbose=0,
    )
    lines = path.read_text().splitlines()
    assert len(lines) == 6 and lines.count(lines[0]) == 1
    with pytest.raises(FileNotFoundError, match="CSVLogger: directory .*nope does not exist"):
        gpunet.fit(
            model,
            CrossEntropy(),
            SGD(model.parameters(), lr=0.1),
            x,
            y,
            epochs=1,
            callbacks=[CSVLogger(tmp_path / "nope" / "log.csv")],
        )


# --------------------------------------------------------------------------- TerminateOnNaN


class PoisonAt(Callback):
    """Puts a NaN into the last layer's weight after (epoch, batch)."""

    def __init__(self, epoch, batch):
        self.at = (epoch, batch)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            weight = backend.to_numpy(self.model[2].weight.data).copy()
            weight[0, 0] = np.nan
            self.model[2].weight.data = backend.asarray(weight)


def test_terminate_on_nan_stops_at_the_batch_and_names_the_layer(rng, capsys):
    x, y = data(rng)
    model = mlp()
    optimizer = SGD(model.parameters(), lr=0.1)
    stopper = TerminateOnNaN()
    history = gpunet.fit(
        model,
        CrossEntropy(),
        optimizer,
        x,
        y,
        epochs=5,
        batch_size=8,
        callbacks=[PoisonAt(1, 2), stopper],
        verbose=0,
    )
    assert stopper.report["epoch"] == 1 and stopper.report["batch"] == 3
    assert math.isnan(stopper.report["loss"])
    # the NaN weight sits in layer 2, but it poisons every gradient below it too
    assert (stopper.report["layer"], stopper.report["parameter"]) == ("0", "weight")
    assert optimizer.step_count == 5 + 5  # no bar, no read mid-epoch: stopped after it
    assert len(history) == 2
    assert capsys.readouterr().out.strip() == (
        "TerminateOnNaN: loss is nan at epoch 2, batch 4; first non-finite gradient in layer "
        "'0', parameter 'weight'; stopping"
    )


def test_first_nonfinite_gradient_is_found_in_forward_order(xp):
    model = mlp()
    for p in model.parameters():
        p.grad = xp.zeros_like(p.data)
    assert first_nonfinite_gradient(model) == (None, None)
    model[2].bias.grad = xp.full(model[2].bias.shape, math.inf)
    assert first_nonfinite_gradient(model) == ("2", "bias")
    nested = Sequential(Dense(4, 4), Sequential(Dense(4, 4), Dense(4, 2)))
    for p in nested.parameters():
        p.grad = xp.zeros_like(p.data)
    nested[1][1].weight.grad = xp.full(nested[1][1].weight.shape, math.nan)
    assert first_nonfinite_gradient(nested) == ("1.1", "weight")
