"""How often ``fit`` reads from the device and copies data to it, counted on the CPU.

On a GPU every read of a number waits for the GPU, and every copy of host data to it
costs a transfer: ``fit`` reads the running loss and metrics only when the progress bar
draws them and at the end of each epoch (``TerminateOnNaN`` looks at those reads), and
moves NumPy data to the device once per epoch. Here the reads are counted with a NumPy
array that counts its conversions to Python numbers, and the copies on the
array-api-strict backend, where NumPy data are foreign as they are on CuPy.
"""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest

import gpunet
from gpunet import backend
from gpunet.callbacks import TerminateOnNaN
from gpunet.losses import CrossEntropy
from gpunet.nn import Dense, ReLU, Sequential
from gpunet.optim import SGD
from gpunet.training import progress
from tests.test_callbacks import PoisonAt

# the module: gpunet.data.batches is also the name of its function
batches_module = importlib.import_module("gpunet.data.batches")

N, BATCH, EPOCHS = 40, 8, 3  # 5 batches per epoch


class Counted(np.ndarray):
    """A NumPy array that counts the times its value is read as a Python number."""

    reads = 0

    def __float__(self):
        Counted.reads += 1
        return float(np.asarray(self))

    def __bool__(self):
        Counted.reads += 1
        return bool(np.asarray(self))

    def item(self, *args):
        Counted.reads += 1
        return np.asarray(self).item(*args)


class CountedLoss(CrossEntropy):
    """Cross-entropy whose loss values count their reads."""

    def forward(self, pred, target):
        return super().forward(pred, target).view(Counted)


def _data(rng):
    x = rng.normal(size=(N, 4))
    return x, (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0)


@pytest.fixture
def reads(monkeypatch):
    """Counts host reads: ``to_numpy`` calls and reads of the loss values."""
    if backend.name() != "numpy":
        pytest.skip("counted on NumPy arrays")
    counter = {"to_numpy": 0}
    to_numpy = backend.to_numpy

    def counting(x):
        counter["to_numpy"] += 1
        return to_numpy(x)

    monkeypatch.setattr(backend, "to_numpy", counting)
    Counted.reads = 0
    return lambda: counter["to_numpy"] + Counted.reads


def _fit(rng, verbose, callbacks=(), epochs=EPOCHS, loss_fn=None):
    model = Sequential(Dense(4, 8), ReLU(), Dense(8, 3))
    optimizer = SGD(model.parameters(), lr=0.1)
    x, y = _data(rng)
    history = gpunet.fit(
        model, loss_fn or CountedLoss(), optimizer, x, y, epochs=epochs, batch_size=BATCH,
        callbacks=list(callbacks), verbose=verbose,
    )  # fmt: skip
    return history, optimizer


@pytest.mark.parametrize(
    ("verbose", "refresh", "per_epoch"),
    [(0, 0.0, 1), (2, 0.0, 1), (1, math.inf, 1), (1, 0.0, N // BATCH + 1)],
    ids=["silent", "lines", "bar-idle", "bar-every-batch"],
)
def test_fit_reads_the_device_only_when_the_bar_draws_and_at_epoch_end(
    verbose, refresh, per_epoch, reads, rng, monkeypatch, capsys
):
    """One read (loss and accuracy together) per bar refresh and per epoch end; a
    healthy TerminateOnNaN adds none."""
    monkeypatch.setattr(progress, "REFRESH_SECONDS", refresh)
    history, _ = _fit(rng, verbose, [TerminateOnNaN()])
    assert len(history["loss"]) == EPOCHS and all(map(math.isfinite, history["loss"]))
    assert reads() == EPOCHS * per_epoch


def test_validation_is_read_once_per_epoch(reads, rng):
    model = Sequential(Dense(4, 3))
    x, y = _data(rng)
    gpunet.fit(
        model, CountedLoss(), SGD(model.parameters(), lr=0.1), x, y, epochs=2,
        batch_size=BATCH, validation_split=0.25, verbose=0,
    )  # fmt: skip
    assert reads() == 2 * 2  # training and validation numbers, each epoch


@pytest.mark.parametrize(("refresh", "steps"), [(0.0, 5 + 4), (math.inf, 5 + 5)])
def test_terminate_on_nan_stops_at_the_first_read_after_the_bad_batch(
    refresh, steps, rng, monkeypatch, capsys
):
    """With the bar reading after every batch it stops right after the bad batch; when
    the bar has not drawn, at the end of that batch's epoch. Either way it names the
    first bad batch."""
    monkeypatch.setattr(progress, "REFRESH_SECONDS", refresh)
    stopper = TerminateOnNaN(verbose=0)
    history, optimizer = _fit(rng, 1, [PoisonAt(1, 2), stopper], 5, CrossEntropy())
    assert (stopper.report["epoch"], stopper.report["batch"]) == (1, 3)
    assert math.isnan(stopper.report["loss"])
    assert optimizer.step_count == steps
    assert len(history) == 2


def test_terminate_on_nan_outside_fit_checks_each_batch(rng):
    stopper = TerminateOnNaN(verbose=0)
    stopper.model = Sequential(Dense(4, 3))
    stopper.on_epoch_begin(0)
    stopper.on_batch_end(0, {"loss": np.float32(1.0)})
    assert stopper.report is None
    stopper.on_batch_end(1, {"loss": np.float32(np.inf)})
    assert stopper.report["batch"] == 1 and stopper.report["loss"] == math.inf


# --------------------------------------------------------------------------- copies


@pytest.fixture
def foreign_backend():
    """array-api-strict: NumPy data are foreign to it, as they are to CuPy."""
    pytest.importorskip("array_api_strict")
    with backend.using("array_api_strict"):
        yield


@pytest.fixture
def copies(monkeypatch):
    """The shapes of the NumPy arrays moved to the device, in order."""
    moved = []
    asarray = backend.asarray

    def recording(x, dtype=None):
        if isinstance(x, np.ndarray) and x.ndim >= 1:
            moved.append(x.shape)
        return asarray(x, dtype=dtype)

    monkeypatch.setattr(backend, "asarray", recording)
    return moved


def _train(rng, epochs=2):
    gpunet.seed(0)
    model = Sequential(Dense(4, 8), ReLU(), Dense(8, 3))
    x, y = _data(rng)
    history = gpunet.fit(
        model, CrossEntropy(), SGD(model.parameters(), lr=0.1), x, y, epochs=epochs,
        batch_size=BATCH, verbose=0,
    )  # fmt: skip
    return history["loss"]


@pytest.mark.parametrize(
    ("transfer_bytes", "x_chunks"),
    [(batches_module.TRANSFER_BYTES, [N]), (2 * BATCH * 4 * 8, [16, 16, 8])],
    ids=["one-chunk", "chunks-of-two-batches"],
)
def test_numpy_data_move_to_the_device_once_per_epoch(
    transfer_bytes, x_chunks, foreign_backend, copies, rng, monkeypatch
):
    """x (float64 rows of 32 bytes) in chunks of whole batches; y (8 bytes a row) whole."""
    monkeypatch.setattr(batches_module, "TRANSFER_BYTES", transfer_bytes)
    losses = _train(np.random.default_rng(0))
    parameters = [(4, 8), (8,), (8, 3), (3,)]  # moved once, when the model is built
    per_epoch = [(rows, 4) for rows in x_chunks[:1]] + [(N,)] + [(r, 4) for r in x_chunks[1:]]
    assert copies == parameters + per_epoch * 2
    with backend.using("numpy"):
        expected = _train(np.random.default_rng(0))  # batch by batch on the host
    np.testing.assert_allclose(losses, expected, rtol=1e-6)


def test_device_data_move_only_the_order_once_per_epoch(foreign_backend, copies, rng):
    x, y = _data(rng)
    x_device, y_device = backend.asarray(x), backend.asarray(y)
    copies.clear()
    order = gpunet.data.epoch_order(N, True, seed=3)
    got = list(batches_module.epoch_batches((x_device, y_device), order, BATCH))
    assert copies == [(N,), (N,)]  # the order, once for each array
    assert len(got) == N // BATCH
    np.testing.assert_array_equal(backend.to_numpy(got[1][1]), y[order[BATCH : 2 * BATCH]])


def test_epoch_batches_follow_a_partial_order_across_chunks(foreign_backend, monkeypatch):
    """A rank's share of an epoch (a part of a permutation), chunk after chunk."""
    monkeypatch.setattr(batches_module, "TRANSFER_BYTES", 3 * 5 * 8)  # 5 rows of 3 float64
    x = np.arange(60.0).reshape(20, 3)
    order = np.random.default_rng(0).permutation(20)[:13]
    got = list(batches_module.epoch_batches((x,), order, 5, "float64"))
    assert [int(xb.shape[0]) for (xb,) in got] == [5, 5, 3]
    for index, (xb,) in enumerate(got):
        np.testing.assert_array_equal(backend.to_numpy(xb), x[order[5 * index : 5 * index + 5]])
