"""ModelCheckpoint: save the model (and optimizer) during training, safely."""

from __future__ import annotations

import os
from typing import Any

from gpunet import checks, io
from gpunet.callbacks.base import Callback
from gpunet.callbacks.monitor import Monitor, is_main_process


class ModelCheckpoint(Callback):
    """Save a checkpoint (``gpunet.save``) at the end of epochs.

    The directory is checked when training begins, so a bad path fails at once rather
    than after the first epoch. Each save is atomic (temporary file, then rename): a
    failed save leaves the previous checkpoint intact. In a distributed run only the main
    rank writes.

    Args:
        path: the file to write; may hold ``str.format`` fields filled from the epoch
            (1-based) and its logs, e.g. ``"ckpt-{epoch:03d}-{val_loss:.3f}.safetensors"``.
        monitor: the number deciding what is best (default ``"val_loss"``).
        save_best_only: save only when ``monitor`` improves (default True); else every
            epoch.
        mode: ``"min"``, ``"max"`` or ``"auto"`` (default; max for accuracies).
        save_optimizer: save the optimizer state too, to resume training (default True).
        verbose: print a line for each save (default 0).

    The checkpoint's metadata (returned by ``gpunet.load``) is
    ``{"epoch": <0-based epoch>, "logs": {<that epoch's numbers>}}``.

    Attributes:
        best: the best monitored value saved so far.
        last_path: the path of the last checkpoint written, or None.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        monitor: str = "val_loss",
        save_best_only: bool = True,
        mode: str = "auto",
        save_optimizer: bool = True,
        verbose: int = 0,
    ):
        self.path = os.fspath(path)
        checks.flag(save_best_only, "ModelCheckpoint", "save_best_only")
        checks.flag(save_optimizer, "ModelCheckpoint", "save_optimizer")
        self.monitor, self.save_best_only = monitor, save_best_only
        self.save_optimizer, self.verbose = save_optimizer, verbose
        self._monitor = Monitor("ModelCheckpoint", monitor, mode)
        self.last_path: str | None = None

    @property
    def best(self) -> float:
        return self._monitor.best

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.last_path = None
        if self.save_best_only:
            self._monitor.reset(self.trainer)
        if is_main_process() and "{" not in os.path.dirname(self.path):
            io.check_directory(self.path, "ModelCheckpoint")

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = dict(logs or {})
        if self.save_best_only:
            value = self._monitor.value(logs)
            if not self._monitor.improved(value):
                return
            previous, self._monitor.best = self._monitor.best, value
        if not is_main_process():
            return
        path = self.path.format(epoch=epoch + 1, **logs)
        optimizer = self.optimizer if self.save_optimizer else None
        io.save(path, self.model, optimizer, epoch=epoch, logs=logs)
        self.last_path = path
        if self.verbose:
            reason = (
                f"{self.monitor} improved from {previous:.4f} to {value:.4f}, "
                if self.save_best_only
                else ""
            )
            print(f"ModelCheckpoint: epoch {epoch + 1}: {reason}saved {path}")
