"""``fit``, ``evaluate`` and ``predict``: the training loop Keras users know.

The loop is the manual one, written once::

    for xb, yb in batches:                 # the data move to the device once per epoch
        optimizer.zero_grad()
        loss = loss_fn(model(xb), yb)      # + regularizers.penalty(model)
        model.backward(loss_fn.backward())
        optimizer.step()

plus what makes it pleasant: validation, metrics, a progress bar, callbacks. Losses and
metrics are summed on the device; the host reads them, all in one transfer, at most
``REFRESH_SECONDS`` apart for the bar and once per epoch, so a GPU never waits for the
bookkeeping (``TerminateOnNaN`` looks at those same reads).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from gpunet import backend, distributed, regularizers
from gpunet.callbacks.base import Callback
from gpunet.data.batches import epoch_batches, epoch_order, take_rows
from gpunet.nn.layer import Layer, Sequential
from gpunet.training import arguments
from gpunet.training import metrics as metrics_module
from gpunet.training.history import History
from gpunet.training.progress import Progress


def fit(
    model: Any,
    loss_fn: Any,
    optimizer: Any,
    x: Any,
    y: Any,
    *,
    epochs: int,
    batch_size: int | None = 32,
    validation_data: tuple[Any, Any] | None = None,
    validation_split: float = 0.0,
    callbacks: Iterable[Callback] = (),
    shuffle: bool = True,
    metrics: Iterable[Any] = ("accuracy",),
    verbose: int = 1,
    augment: Callable[[Any], Any] | None = None,
    initial_epoch: int = 0,
) -> History:
    """Train ``model`` on ``(x, y)``; returns the per-epoch numbers.

    Args:
        model: a ``gpunet.nn.Layer``.
        loss_fn: a loss from ``gpunet.losses``. The reported loss adds
            ``gpunet.regularizers.penalty(model)`` when the model has regularizers.
        optimizer: an optimizer over ``model.parameters()``.
        x: inputs, samples on axis 0 (NumPy or any backend's array; NumPy data on a GPU
            backend move to it once per epoch, in chunks of whole batches: see
            ``gpunet.data.batches``).
        y: targets with as many samples as ``x``.
        epochs: train until this epoch index (exclusive), starting at ``initial_epoch``.
        batch_size: samples per update (default 32); None for full-batch gradient
            descent, 1 for stochastic gradient descent. In a distributed run it is the
            global batch: each rank runs ``batch_size / world_size`` samples of it.
        validation_data: ``(x_val, y_val)`` evaluated after each epoch (default None).
        validation_split: fraction of ``(x, y)`` held out for validation, taken from the
            end before any shuffling (default 0.0; not together with ``validation_data``).
        callbacks: ``gpunet.callbacks`` objects (default none). While training, the
            first layer of a ``Sequential`` skips the gradient of the model's input
            (nothing reads it; ``input_grad`` is restored afterwards).
        shuffle: visit the samples in a new order each epoch, drawn from
            ``gpunet.backend.host_rng()`` so a restored RNG state repeats it (default True).
        metrics: names (``"accuracy"``) or functions ``metric(pred, target)`` returning
            the batch mean (default ``("accuracy",)``).
        verbose: 0 silent, 1 a progress bar per epoch (default), 2 one line per epoch.
        augment: ``augment(x_batch) -> x_batch`` applied on the device to each training
            batch (default None).
        initial_epoch: the epoch index to start at, to resume (default 0).

    Returns:
        ``History``: ``history["loss"]``, each metric, ``val_*``, ``epoch_time``.

    Raises:
        ValueError: for ``epochs < 1``, ``x`` and ``y`` of different lengths,
            ``validation_data`` that does not match ``x`` and ``y``, a bad batch size,
            split or verbosity, or NaN/Inf in the data.
        TypeError: for data that are not arrays of real numbers, or a model, loss,
            optimizer or callback of the wrong kind (see ``gpunet.training.arguments``).
    """
    callbacks = arguments.check_training(model, loss_fn, optimizer, callbacks)
    arguments.check_data("fit", x, y, validation_data)
    arguments.check_same_data_on_every_rank(x, y)
    _check_int("epochs", epochs, 1)
    _check_int("initial_epoch", initial_epoch, 0)
    if initial_epoch >= epochs:
        raise ValueError(
            f"fit: epochs ({epochs}) must be greater than initial_epoch ({initial_epoch})"
        )
    _check_batch_size("fit", batch_size)
    if verbose not in (0, 1, 2):
        raise ValueError(f"fit: verbose must be 0, 1 or 2, got {verbose!r}")
    n = _check_pair("fit", x, y)
    x, y, validation_data = _split_validation(x, y, n, validation_data, validation_split)
    for label, data in (("x", x), ("y", y), *_labelled(validation_data)):
        _check_finite("fit", label, data)
    trainer = Trainer(model, loss_fn, optimizer, metrics, batch_size, shuffle, augment)
    return trainer.run(x, y, validation_data, epochs, initial_epoch, callbacks, verbose)


def evaluate(
    model: Any,
    loss_fn: Any,
    x: Any,
    y: Any,
    *,
    batch_size: int | None = 32,
    metrics: Iterable[Any] = ("accuracy",),
) -> dict[str, float]:
    """The loss and metrics of ``model`` on ``(x, y)``, in inference mode, in batches.

    Args:
        model, loss_fn: as in ``fit`` (the loss includes the regularizer penalty).
        x, y: the data.
        batch_size: samples per forward pass (default 32; None for one pass).
        metrics: as in ``fit`` (default ``("accuracy",)``).

    Returns:
        ``{"loss": ..., "accuracy": ...}`` as Python floats.
    """
    arguments.check_model("evaluate", model)
    arguments.check_loss("evaluate", loss_fn)
    arguments.check_data("evaluate", x, y)
    _check_batch_size("evaluate", batch_size)
    _check_pair("evaluate", x, y)
    trainer = Trainer(model, loss_fn, None, metrics, batch_size, False, None)
    return trainer.evaluate(x, y)


def predict(model: Any, x: Any, *, batch_size: int | None = 32) -> Any:
    """The model's outputs for ``x``, computed in inference mode in batches.

    Args:
        model: a ``gpunet.nn.Layer``.
        x: inputs, samples on axis 0.
        batch_size: samples per forward pass (default 32; None for one pass).

    Returns:
        One array on the current backend, the batches' outputs concatenated.
    """
    arguments.check_model("predict", model)
    arguments.check_data("predict", x)
    _check_batch_size("predict", batch_size)
    n = _length("predict", x, "x")
    dtype = _model_dtype(model)
    step = n if batch_size is None else batch_size
    was_training = model.training
    model.eval()
    try:
        outputs = [
            model(_rows(x, start, min(start + step, n), dtype)) for start in range(0, n, step)
        ]
    finally:
        model.train(was_training)
    if len(outputs) == 1:
        return outputs[0]
    return backend.namespace(outputs[0]).concat(outputs, axis=0)


class Trainer:
    """The loop behind ``fit``; callbacks reach it as ``callback.trainer``.

    Attributes:
        stop_training: set True to stop: after the current batch when set in
            ``on_batch_end``, else after the current epoch.
        log_names: the names the epoch logs will hold (``loss``, metrics, ``val_*``),
            known before ``on_train_begin`` so callbacks can check what they monitor.
        history: the ``History`` being recorded.
        epochs: the ``epochs`` argument of ``fit``.
        read_logs: the epoch's running numbers as the host last read them from the
            device (for the progress bar, and at the end of the epoch), as floats.
        read_batch: the last batch those numbers include (-1: none read this epoch);
            equal to the batch passed to ``on_batch_end`` when they were read after it.
    """

    def __init__(
        self,
        model: Any,
        loss_fn: Any,
        optimizer: Any,
        metrics: Iterable[Any],
        batch_size: int | None,
        shuffle: bool,
        augment: Callable[[Any], Any] | None,
    ):
        self.model, self.loss_fn, self.optimizer = model, loss_fn, optimizer
        self.metrics = metrics_module.resolve(metrics, loss_fn)
        self.batch_size, self.shuffle, self.augment = batch_size, shuffle, augment
        self.dtype = _model_dtype(model)
        self.penalized = any(
            getattr(layer, "regularizer", None) is not None for _, layer in model.layers()
        )
        self.stop_training = False
        self.log_names: list[str] = []
        self.history: History | None = None
        self.epochs = 0
        self._totals: dict[str, Any] = {}
        self._seen, self._step, self._batch = 0, 1, -1
        self._local_batch = batch_size
        self.read_logs: dict[str, float] = {}
        self.read_batch = -1

    def run(
        self,
        x: Any,
        y: Any,
        validation_data: tuple[Any, Any] | None,
        epochs: int,
        initial_epoch: int,
        callbacks: list[Callback],
        verbose: int,
    ) -> History:
        """Train from ``initial_epoch`` to ``epochs``; see ``fit``."""
        parallel = distributed.is_initialized()
        if parallel and not distributed.is_main():
            verbose = 0  # only the main rank shows progress
        self.history = History()
        callbacks = [*callbacks, self.history]  # History last: it sees what others logged
        train_names = ["loss", *self.metrics]
        self.log_names = train_names + (
            [f"val_{name}" for name in train_names] if validation_data is not None else []
        )
        self.stop_training, self.epochs = False, epochs
        for callback in callbacks:
            callback.model, callback.optimizer, callback.trainer = (
                self.model,
                self.optimizer,
                self,
            )
        batch_hooks = [c for c in callbacks if type(c).on_batch_end is not Callback.on_batch_end]
        n = int(x.shape[0])
        self._local_batch = self.batch_size
        if parallel:
            # batch_size is global: each rank runs its share of every batch.
            n //= distributed.world_size()
            if self.batch_size is not None:
                self._local_batch = distributed.local_batch_size(self.batch_size)
        steps = 1 if self._local_batch is None else math.ceil(n / self._local_batch)
        progress = Progress(verbose, epochs, steps)
        logs: dict[str, float] = {}
        for callback in callbacks:
            callback.on_train_begin({})
        try:
            with _input_gradient_skipped(self.model):
                for epoch in range(initial_epoch, epochs):
                    # What callbacks log at the start of an epoch (the rate of a scheduler)
                    # joins the epoch's logs, whatever the order of the callbacks.
                    extra: dict[str, float] = {}
                    for callback in callbacks:
                        callback.on_epoch_begin(epoch, extra)
                    start = time.perf_counter()
                    logs = self._train_epoch(epoch, x, y, progress, batch_hooks)
                    if validation_data is not None:
                        val_logs = self.evaluate(*validation_data)
                        logs.update({f"val_{key}": value for key, value in val_logs.items()})
                    logs.update(extra)
                    if parallel:
                        logs = distributed.average(logs)
                    seconds = time.perf_counter() - start
                    self.history.epoch_time.append(seconds)
                    progress.epoch_end(epoch, logs, seconds)
                    for callback in callbacks:
                        callback.on_epoch_end(epoch, logs)
                    if self.stop_training:
                        break
        finally:
            progress.close()
        for callback in callbacks:
            callback.on_train_end(logs)
        return self.history

    def _train_epoch(
        self, epoch: int, x: Any, y: Any, progress: Progress, batch_hooks: Sequence[Callback]
    ) -> dict[str, float]:
        model, loss_fn, optimizer = self.model, self.loss_fn, self.optimizer
        n = int(x.shape[0])
        order = epoch_order(n, True) if self.shuffle else None
        if distributed.is_initialized():
            order = distributed.shard(order if order is not None else epoch_order(n, False))
        count = n if order is None else len(order)
        step = count if self._local_batch is None else self._local_batch
        self._totals = {name: 0.0 for name in ("loss", *self.metrics)}
        self._seen, self._step, self._batch = 0, step, -1
        self.read_logs, self.read_batch = {}, -1
        progress.epoch_begin(epoch, self._running_logs)
        model.train()
        for batch, (xb, yb) in enumerate(epoch_batches((x, y), order, step, self.dtype)):
            size = int(xb.shape[0])
            if self.augment is not None:
                xb = self.augment(xb)
            optimizer.zero_grad()
            pred = model(xb)
            loss = loss_fn(pred, yb)
            if self.penalized:
                loss = loss + regularizers.penalty(model)
            model.backward(loss_fn.backward())
            optimizer.step()
            self._accumulate(loss, pred, yb, size)
            self._batch = batch
            progress.batch_end(batch)  # reads the running numbers when the bar is due
            if batch_hooks:
                batch_logs = {"batch": batch, "size": size, "loss": loss}
                for callback in batch_hooks:
                    callback.on_batch_end(batch, batch_logs)
            if self.stop_training:
                break
        return self._running_logs()

    def _accumulate(self, loss: Any, pred: Any, target: Any, size: int) -> None:
        # Device-side sums, so no host sync here. Each batch mean counts size / step: a
        # full batch adds its mean as it is, one kernel on a GPU instead of two.
        totals, step = self._totals, self._step
        totals["loss"] = totals["loss"] + (loss if size == step else loss * (size / step))
        for name, metric in self.metrics.items():
            value = metric(pred, target)
            totals[name] = totals[name] + (value if size == step else value * (size / step))
        self._seen += size

    def _running_logs(self) -> dict[str, float]:
        scale = self._step / max(self._seen, 1)
        totals = metrics_module.read(self._totals)
        self.read_logs = {name: total * scale for name, total in totals.items()}
        self.read_batch = self._batch
        return dict(self.read_logs)

    def evaluate(self, x: Any, y: Any) -> dict[str, float]:
        """Loss and metrics over ``(x, y)`` in inference mode (see ``evaluate``)."""
        model, loss_fn = self.model, self.loss_fn
        n = int(x.shape[0])
        step = n if self.batch_size is None else self.batch_size
        totals: dict[str, Any] = {name: 0.0 for name in ("loss", *self.metrics)}
        was_training = model.training
        model.eval()
        try:
            for xb, yb in epoch_batches((x, y), None, step, self.dtype):
                size = int(xb.shape[0])
                pred = model(xb)
                totals["loss"] = totals["loss"] + loss_fn(pred, yb) * size
                for name, metric in self.metrics.items():
                    totals[name] = totals[name] + metric(pred, yb) * size
        finally:
            model.train(was_training)
        if self.penalized:
            totals[_PENALTY] = regularizers.penalty(model) * n
        logs = {name: total / n for name, total in metrics_module.read(totals).items()}
        if self.penalized:
            logs["loss"] += logs.pop(_PENALTY)
        return logs


_PENALTY = ("penalty",)  # read with the metrics; a key no metric name can take


# --------------------------------------------------------------------------- checks


def _check_int(label: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"fit: {label} must be an int >= {minimum}, got {value!r}")


def _check_batch_size(caller: str, batch_size: Any) -> None:
    if batch_size is None:
        return
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer):
        raise ValueError(f"{caller}: batch_size must be None or an int >= 1, got {batch_size!r}")
    if batch_size < 1:
        raise ValueError(f"{caller}: batch_size must be None or an int >= 1, got {batch_size}")


def _length(caller: str, data: Any, label: str) -> int:
    shape = getattr(data, "shape", None)
    if shape is None or len(shape) == 0:
        raise ValueError(
            f"{caller}: {label} must be an array with samples on axis 0, got {type(data).__name__}"
        )
    return int(shape[0])


def _check_pair(caller: str, x: Any, y: Any, prefix: str = "") -> int:
    n, n_y = _length(caller, x, f"{prefix}x"), _length(caller, y, f"{prefix}y")
    if n != n_y:
        raise ValueError(f"{caller}: {prefix}x has {n} samples but {prefix}y has {n_y}")
    if n == 0:
        raise ValueError(f"{caller}: {prefix}x has no samples")
    return n


def _split_validation(
    x: Any, y: Any, n: int, validation_data: Any, validation_split: float
) -> tuple[Any, Any, tuple[Any, Any] | None]:
    if not 0.0 <= validation_split < 1.0:
        raise ValueError(f"fit: validation_split must be in [0, 1), got {validation_split!r}")
    if validation_data is not None:
        if validation_split:
            raise ValueError("fit: pass validation_data or validation_split, not both")
        if not isinstance(validation_data, tuple | list) or len(validation_data) != 2:
            raise ValueError(
                "fit: validation_data must be a tuple (x_val, y_val), "
                f"got {type(validation_data).__name__}"
            )
        x_val, y_val = validation_data
        _check_pair("fit", x_val, y_val, prefix="validation_data ")
        for label, val, train in (("x", x_val, x), ("y", y_val, y)):
            if tuple(val.shape[1:]) != tuple(train.shape[1:]):
                raise ValueError(
                    f"fit: validation_data {label} has shape {tuple(val.shape)}, expected "
                    f"(n, {', '.join(str(d) for d in train.shape[1:])}) like {label} "
                    f"{tuple(train.shape)}"
                )
        return x, y, (x_val, y_val)
    if not validation_split:
        return x, y, None
    n_val = int(round(n * validation_split))
    if n_val == 0 or n_val == n:
        raise ValueError(
            f"fit: validation_split={validation_split} of {n} samples leaves "
            f"{n - n_val} for training and {n_val} for validation; both must be >= 1"
        )
    cut = n - n_val
    # The trailing ellipsis: array-API indexing must name every axis it does not slice.
    return x[:cut, ...], y[:cut, ...], (x[cut:, ...], y[cut:, ...])


def _labelled(validation_data: tuple[Any, Any] | None) -> list[tuple[str, Any]]:
    if validation_data is None:
        return []
    return [("validation x", validation_data[0]), ("validation y", validation_data[1])]


def _check_finite(caller: str, label: str, data: Any) -> None:
    if isinstance(data, np.ndarray):
        if data.dtype.kind in "fc" and not np.isfinite(data).all():
            raise ValueError(f"{caller}: {label} contains NaN or Inf")
        return
    xp = backend.namespace(data)
    if xp.isdtype(data.dtype, "real floating") and not bool(xp.all(xp.isfinite(data))):
        raise ValueError(f"{caller}: {label} contains NaN or Inf")


def _rows(data: Any, start: int, stop: int, dtype: Any) -> Any:
    """Rows ``start:stop`` of ``data`` on the device (a view where possible), in ``dtype``
    if floating."""
    return take_rows(data, slice(start, stop), dtype)


def _model_dtype(model: Any) -> Any:
    params = model.parameters()
    return params[0].data.dtype if params else None


@contextlib.contextmanager
def _input_gradient_skipped(model: Layer) -> Iterator[None]:
    """While ``fit`` trains, the first layer of a ``Sequential`` skips the gradient of the
    model's input (its ``input_grad``), which nothing reads: PyTorch skips it too for an
    input that does not require one. Restored afterwards."""
    first = model[0] if isinstance(model, Sequential) and len(model) else None
    kept = getattr(first, "input_grad", None)
    if kept is None:
        yield
        return
    first.input_grad = False
    try:
        yield
    finally:
        first.input_grad = kept
