"""EarlyStopping: stop when the monitored number stops improving, keep the best weights."""

from __future__ import annotations

from typing import Any

from gpunet import backend, checks
from gpunet.callbacks.base import Callback
from gpunet.callbacks.monitor import Monitor


class EarlyStopping(Callback):
    """Stop training once ``monitor`` has not improved for ``patience`` epochs.

    Args:
        monitor: the number to watch (default ``"val_loss"``).
        patience: epochs without improvement before stopping (default 5).
        min_delta: the least change that counts as an improvement (default 0.0).
        mode: ``"min"``, ``"max"`` or ``"auto"`` (default; max for accuracies).
        restore_best_weights: at the end of training, put back the weights of the best
            epoch (default True), whether training stopped early or ran out of epochs.
        verbose: print a line when it stops (default 0).

    Attributes:
        best: the best monitored value seen.
        best_epoch: the epoch (0-based) it was seen at, or None.
        stopped_epoch: the epoch training stopped at, or None if it was not stopped.

    Raises:
        ValueError: at the start of training if ``monitor`` will not be logged, naming
            what is available.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 5,
        min_delta: float = 0.0,
        mode: str = "auto",
        restore_best_weights: bool = True,
        verbose: int = 0,
    ):
        patience = checks.integer(patience, "EarlyStopping", "patience", minimum=0)
        checks.flag(restore_best_weights, "EarlyStopping", "restore_best_weights")
        self._monitor = Monitor("EarlyStopping", monitor, mode, min_delta)
        self.monitor, self.patience = monitor, patience
        self.restore_best_weights, self.verbose = restore_best_weights, verbose
        self._reset()

    def _reset(self) -> None:
        self.wait = 0
        self.best_epoch: int | None = None
        self.stopped_epoch: int | None = None
        self.best_weights: dict[str, Any] | None = None

    @property
    def best(self) -> float:
        return self._monitor.best

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._reset()
        self._monitor.reset(self.trainer)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        value = self._monitor.value(logs)
        if self._monitor.improved(value):
            self._monitor.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = _copy_state(self.model)
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            if self.trainer is not None:
                self.trainer.stop_training = True
            if self.verbose:
                print(
                    f"EarlyStopping: {self.monitor} has not improved for {self.wait} epochs "
                    f"(best {self.best:.4f}); stopping after epoch {epoch + 1}"
                )

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.restore_best_weights and self.best_weights is not None:
            self.model.load_state_dict(self.best_weights)
            if self.verbose:
                print(f"EarlyStopping: restored the weights of epoch {self.best_epoch + 1}")


def _copy_state(model: Any) -> dict[str, Any]:
    # Copies, because an optimizer may update parameters in place.
    copies = {}
    for name, value in model.state_dict().items():
        copies[name] = backend.namespace(value).asarray(value, copy=True)
    return copies
