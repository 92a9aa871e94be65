"""fit, evaluate, predict, metrics, History and the progress display."""

from __future__ import annotations

import math

import numpy as np
import pytest

import gpunet
from gpunet import backend, distributed
from gpunet.callbacks import Callback, ModelCheckpoint
from gpunet.data import batches
from gpunet.losses import BinaryCrossEntropy, CrossEntropy
from gpunet.nn import Dense, ReLU, Sequential, Sigmoid
from gpunet.optim import SGD
from gpunet.regularizers import L2
from gpunet.training import accuracy, progress


def blobs(rng, n=240, classes=3, features=4):
    """Well separated Gaussian blobs: integer labels, float64 inputs on the host."""
    centers = rng.normal(0, 4, size=(classes, features))
    y = rng.integers(0, classes, size=n)
    x = centers[y] + rng.normal(0, 0.5, size=(n, features))
    return x, y


def mlp(features=4, classes=3, regularizer=None):
    return Sequential(Dense(features, 16, regularizer=regularizer), ReLU(), Dense(16, classes))


def weights(model):
    return {name: backend.to_numpy(value) for name, value in model.state_dict().items()}


def test_fit_learns_blobs_and_records_history(rng):
    x, y = blobs(rng)
    model = mlp()
    history = gpunet.fit(
        model,
        CrossEntropy(),
        SGD(model.parameters(), lr=0.1),
        x,
        y,
        epochs=8,
        batch_size=16,
        validation_split=0.25,
        verbose=0,
    )
    assert history.keys() == ["loss", "accuracy", "val_loss", "val_accuracy"]
    assert len(history) == 8 and history.epoch == list(range(8))
    assert len(history.epoch_time) == 8 and all(t > 0 for t in history.epoch_time)
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert history["val_accuracy"][-1] >= 0.95
    table = history.table().splitlines()
    assert table[0].split() == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "time"]
    assert len(table) == 9 and table[-1].split()[0] == "8"


def test_fit_skips_the_input_gradient_and_restores_the_setting(rng):
    """During fit the first layer computes no input gradient; afterwards it does again."""
    seen = []

    class Watch(Callback):
        def on_batch_end(self, batch, logs):
            seen.append(self.model[0].input_grad)

    x, y = blobs(rng, n=32)
    model = mlp()
    gpunet.fit(
        model,
        CrossEntropy(),
        SGD(model.parameters(), lr=0.05),
        x,
        y,
        epochs=1,
        batch_size=16,
        verbose=0,
        callbacks=[Watch()],
    )
    assert seen == [False, False]
    assert model[0].input_grad is True
    model[0].input_grad = False  # a setting of the user's own is kept as it was
    gpunet.fit(model, CrossEntropy(), SGD(model.parameters(), lr=0.05), x, y, epochs=1, verbose=0)
    assert model[0].input_grad is False


def test_fit_is_the_manual_loop(rng):
    """Same seed, same shuffles, same updates: identical weights."""
    x, y = blobs(rng, n=50)
    backend.seed(3)
    model = mlp()
    gpunet.fit(
        model,
        CrossEntropy(),
        SGD(model.parameters(), lr=0.05),
        x,
        y,
        epochs=3,
        batch_size=16,
        verbose=0,
    )
    backend.seed(3)
    manual = mlp()
    loss_fn, optimizer = CrossEntropy(), SGD(manual.parameters(), lr=0.05)
    for _ in range(3):
        for xb, yb in batches(x, y, batch_size=16, shuffle=True):
            optimizer.zero_grad()
            loss_fn(manual(xb), yb)
            manual.backward(loss_fn.backward())
            optimizer.step()
    for name, value in weights(model).items():
        np.testing.assert_array_equal(value, weights(manual)[name], err_msg=name)


def test_reported_loss_is_the_sample_mean_with_penalty(rng, tol):
    """With lr=0 the weights stay put, so the epoch loss is evaluate's loss (+ penalty)."""
    x, y = blobs(rng, n=70)
    model = mlp(regularizer=L2(0.01))
    history = gpunet.fit(
        model,
        CrossEntropy(),
        SGD(model.parameters(), lr=0.0),
        x,
        y,
        epochs=1,
        batch_size=16,
        verbose=0,
    )
    result = gpunet.evaluate(model, CrossEntropy(), x, y, batch_size=None)
    data_loss = float(CrossEntropy()(model(backend.asarray(x)), backend.asarray(y)))
    penalty = 0.01 * float(np.sum(weights(model)["0.weight"].astype(np.float64) ** 2))
    assert penalty > 1e-3
    assert history["loss"][0] == pytest.approx(data_loss + penalty, rel=10 * tol["float32"])
    assert result["loss"] == pytest.approx(data_loss + penalty, rel=10 * tol["float32"])
    predicted = np.argmax(backend.to_numpy(gpunet.predict(model, x)), axis=1)
    assert result["accuracy"] == pytest.approx(np.mean(predicted == y))
    assert history["accuracy"][0] == pytest.approx(result["accuracy"])


@pytest.mark.parametrize(("batch_size", "steps"), [(None, 1), (1, 20), (8, 3)])
def test_batch_size_picks_the_mode_of_gradient_descent(rng, batch_size, steps):
    x, y = blobs(rng, n=20)
    model = mlp()
    optimizer = SGD(model.parameters(), lr=0.01)
    gpunet.fit(model, CrossEntropy(), optimizer, x, y, epochs=2, batch_size=batch_size, verbose=0)
    assert optimizer.step_count == 2 * steps


def test_float64_model_gets_float64_batches_and_augment_runs_on_device(rng, xp):
    x, y = blobs(rng, n=24)
    model = mlp().astype("float64")
    seen = []

    def augment(xb):
        seen.append((backend.library_of(xb), str(xb.dtype).rsplit(".", 1)[-1], xb.shape[0]))
        return xb * 1.0

    gpunet.fit(
        model,
        CrossEntropy(),
        SGD(model.parameters(), lr=0.01),
        x,
        y,
        epochs=1,
        batch_size=10,
        verbose=0,
        augment=augment,
    )
    assert seen == [
        (backend.name(), "float64", 10),
        (backend.name(), "float64", 10),
        (backend.name(), "float64", 4),
    ]


def test_fit_takes_device_arrays_and_validation_data(rng):
    x, y = blobs(rng, n=60)
    xd, yd = backend.asarray(x), backend.asarray(y)
    model = mlp()
    history = gpunet.fit(
        model,
        CrossEntropy(),
        SGD(model.parameters(), lr=0.1),
        xd,
        yd,
        epochs=2,
        validation_data=(xd[:20, ...], yd[:20]),
        verbose=0,
    )
    check = gpunet.evaluate(model, CrossEntropy(), xd[:20, ...], yd[:20])
    assert history["val_loss"][-1] == pytest.approx(check["loss"], rel=1e-6)


def test_validation_split_holds_out_the_last_samples(rng):
    x, y = blobs(rng, n=40)
    model = mlp()
    optimizer = SGD(model.parameters(), lr=0.1)
    history = gpunet.fit(
        model,
        CrossEntropy(),
        optimizer,
        x,
        y,
        epochs=1,
        batch_size=10,
        validation_split=0.25,
        verbose=0,
    )
    assert optimizer.step_count == 3  # 30 training samples
    check = gpunet.evaluate(model, CrossEntropy(), x[30:], y[30:], batch_size=10)
    assert history["val_loss"][0] == pytest.approx(check["loss"], rel=1e-6)
    assert history["val_accuracy"][0] == pytest.approx(check["accuracy"])


def test_predict_in_batches_equals_one_pass(rng, tol):
    x, _ = blobs(rng, n=45)
    model = mlp()
    whole = backend.to_numpy(gpunet.predict(model, x, batch_size=None))
    batched = backend.to_numpy(gpunet.predict(model, x, batch_size=8))
    assert batched.shape == (45, 3)
    np.testing.assert_allclose(batched, whole, rtol=tol["float32"], atol=tol["float32"])
    assert model.training  # restored after inference


def test_binary_accuracy_thresholds_sigmoid_outputs(rng):
    x = rng.normal(size=(80, 2))
    y = (x[:, :1] + x[:, 1:] > 0).astype(np.float64)
    model = Sequential(Dense(2, 1), Sigmoid())
    history = gpunet.fit(
        model,
        BinaryCrossEntropy(),
        SGD(model.parameters(), lr=0.5),
        x,
        y,
        epochs=15,
        batch_size=8,
        verbose=0,
    )
    probabilities = backend.to_numpy(gpunet.predict(model, x))
    expected = np.mean((probabilities > 0.5) == (y > 0.5))
    assert gpunet.evaluate(model, BinaryCrossEntropy(), x, y)["accuracy"] == pytest.approx(expected)
    assert history["accuracy"][-1] >= 0.9


def test_accuracy_metric(xp):
    scores = xp.asarray([[0.1, 0.9, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 3.0], [1.0, 0.0, 0.0]])
    labels = xp.asarray([1, 0, 1, 0])
    assert float(accuracy(scores, labels)) == 0.75
    probabilities = xp.asarray([[0.2], [0.7], [0.51], [0.49]])
    targets = xp.asarray([[0.0], [1.0], [0.0], [0.0]])
    assert float(accuracy(probabilities, targets)) == 0.75
    assert float(accuracy(probabilities, targets, threshold=0.0)) == 0.25
    with pytest.raises(
        ValueError, match=r"accuracy: expected .* got pred \(4, 3\) and target \(4, 2\)"
    ):
        accuracy(scores, xp.asarray([[0, 1]] * 4))


def test_custom_metric_and_unknown_name(rng):
    x, y = blobs(rng, n=20)
    model = mlp()

    def always_one(pred, target):
        return backend.namespace(pred).mean(pred * 0.0 + 1.0)

    history = gpunet.fit(
        model,
        CrossEntropy(),
        SGD(model.parameters(), lr=0.1),
        x,
        y,
        epochs=1,
        metrics=[always_one],
        verbose=0,
    )
    assert history["always_one"] == [1.0]
    with pytest.raises(ValueError, match="fit: unknown metric 'f1'"):
        gpunet.fit(
            model, CrossEntropy(), SGD(model.parameters(), lr=0.1), x, y, epochs=1, metrics=["f1"]
        )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epochs": 0}, r"fit: epochs must be an int >= 1, got 0"),
        (
            {"epochs": 2, "initial_epoch": 2},
            r"fit: epochs \(2\) must be greater than initial_epoch \(2\)",
        ),
        ({"epochs": 1, "batch_size": 0}, r"fit: batch_size must be None or an int >= 1, got 0"),
        ({"epochs": 1, "verbose": 3}, r"fit: verbose must be 0, 1 or 2, got 3"),
        (
            {"epochs": 1, "validation_split": 1.5},
            r"fit: validation_split must be in \[0, 1\), got 1.5",
        ),
        ({"epochs": 1, "validation_split": 0.01}, r"leaves 10 for training and 0 for validation"),
        (
            {"epochs": 1, "validation_data": "xy"},
            r"fit: validation_data must be a tuple \(x_val, y_val\), got str",
        ),
        (
            {"epochs": 1, "validation_data": (np.zeros((3, 5)), np.zeros(3, dtype=np.int64))},
            r"fit: validation_data x has shape \(3, 5\), expected \(n, 4\) like x \(10, 4\)",
        ),
        (
            {"epochs": 1, "validation_data": (np.zeros((3, 4)), np.zeros(2, dtype=np.int64))},
            r"fit: validation_data x has 3 samples but validation_data y has 2",
        ),
        (
            {
                "epochs": 1,
                "validation_split": 0.5,
                "validation_data": (np.zeros((3, 4)), np.zeros(3, dtype=np.int64)),
            },
            r"fit: pass validation_data or validation_split, not both",
        ),
    ],
)
def test_bad_arguments_raise_before_training(rng, kwargs, message):
    x, y = blobs(rng, n=10)
    model = mlp()
    optimizer = SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=message):
        gpunet.fit(model, CrossEntropy(), optimizer, x, y, **{"verbose": 0, **kwargs})
    assert optimizer.step_count == 0


def test_bad_data_raises(rng):
    x, y = blobs(rng, n=10)
    model = mlp()
    optimizer = SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="fit: x has 10 samples but y has 9"):
        gpunet.fit(model, CrossEntropy(), optimizer, x, y[:9], epochs=1)
    x[3, 1] = np.nan
    with pytest.raises(ValueError, match="fit: x contains NaN or Inf"):
        gpunet.fit(model, CrossEntropy(), optimizer, x, y, epochs=1)
    with pytest.raises(ValueError, match="evaluate: x has 10 samples but y has 9"):
        gpunet.evaluate(model, CrossEntropy(), x, y[:9])


# --------------------------------------------------------------------------- progress


def test_verbose_2_prints_one_line_per_epoch_and_0_nothing(rng, capsys):
    x, y = blobs(rng, n=20)
    model = mlp()
    gpunet.fit(model, CrossEntropy(), SGD(model.parameters(), lr=0.1), x, y, epochs=3, verbose=2)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert lines[2].startswith("Epoch 3/3 - ") and "loss: " in lines[2] and "accuracy: " in lines[2]
    gpunet.fit(model, CrossEntropy(), SGD(model.parameters(), lr=0.1), x, y, epochs=2, verbose=0)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_verbose_1_draws_a_bar_per_epoch(rng, capsys):
    x, y = blobs(rng, n=20)
    model = mlp()
    gpunet.fit(
        model,
        CrossEntropy(),
        SGD(model.parameters(), lr=0.1),
        x,
        y,
        epochs=2,
        batch_size=5,
        verbose=1,
    )
    err = capsys.readouterr().err
    assert "Epoch 1/2" in err and "Epoch 2/2" in err and "4/4" in err and "loss=" not in err
    assert "loss: " in err


def test_progress_reads_the_running_numbers_at_most_ten_times_a_second(monkeypatch):
    clock = iter(np.arange(0.0, 100.0, 0.001))  # 1 ms per call: 1000 batches = 1 s
    monkeypatch.setattr(progress.time, "perf_counter", lambda: float(next(clock)))
    reads = []
    bar = progress.Progress(verbose=1, epochs=1, steps=1000)
    bar.epoch_begin(0, lambda: reads.append(1) or {"loss": 1.0})
    for batch in range(1000):
        bar.batch_end(batch)
    bar.epoch_end(0, {"loss": 1.0}, 1.0)
    assert 8 <= len(reads) <= 11


# --------------------------------------------------------------------------- distributed


class _Recorder(Callback):
    def __init__(self):
        self.batches = 0

    def on_batch_end(self, batch, logs=None):
        self.batches += 1


def test_distributed_hooks_shard_average_and_silence_other_ranks(
    rng, monkeypatch, capsys, tmp_path
):
    averaged = []
    monkeypatch.setattr(distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(distributed, "is_main", lambda: False)
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    monkeypatch.setattr(distributed, "local_batch_size", lambda b: b // 2)
    monkeypatch.setattr(distributed, "shard", lambda order, batch_size=None: order[1::2])
    monkeypatch.setattr(distributed, "average", lambda logs: averaged.append(logs) or logs)
    monkeypatch.setattr(distributed, "check_same_on_every_rank", lambda *args: None)
    x, y = blobs(rng, n=40)
    model = mlp()
    recorder = _Recorder()
    checkpoint = ModelCheckpoint(tmp_path / "never.safetensors", save_best_only=False)
    gpunet.fit(
        model,
        CrossEntropy(),
        SGD(model.parameters(), lr=0.1),
        x,
        y,
        epochs=2,
        batch_size=8,
        verbose=2,
        callbacks=[recorder, checkpoint],
    )
    assert recorder.batches == 2 * 5  # 20 samples per rank, local batches of 4
    assert len(averaged) == 2 and set(averaged[0]) == {"loss", "accuracy"}
    assert capsys.readouterr().out == ""  # only the main rank prints
    assert list(tmp_path.iterdir()) == []  # and writes


def test_trainer_knows_its_log_names_before_training(rng):
    names = []

    class Peek(Callback):
        def on_train_begin(self, logs=None):
            names.extend(self.trainer.log_names)

    x, y = blobs(rng, n=20)
    model = mlp()
    gpunet.fit(
        model,
        CrossEntropy(),
        SGD(model.parameters(), lr=0.1),
        x,
        y,
        epochs=1,
        validation_split=0.5,
        callbacks=[Peek()],
        verbose=0,
    )
    assert names == ["loss", "accuracy", "val_loss", "val_accuracy"]


def test_initial_epoch_numbers_the_epochs(rng):
    x, y = blobs(rng, n=20)
    model = mlp()
    history = gpunet.fit(
        model,
        CrossEntropy(),
        SGD(model.parameters(), lr=0.1),
        x,
        y,
        epochs=5,
        initial_epoch=3,
        verbose=0,
    )
    assert history.epoch == [3, 4]
    assert not any(math.isnan(v) for v in history["loss"])
