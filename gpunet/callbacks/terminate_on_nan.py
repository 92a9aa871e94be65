"""TerminateOnNaN: stop at the first non-finite loss and say where it came from."""

from __future__ import annotations

import math
from typing import Any

from gpunet.backend import namespace
from gpunet.callbacks.base import Callback
from gpunet.training.metrics import read


class TerminateOnNaN(Callback):
    """Stop training when a batch's loss is NaN or infinite, in that batch's epoch.

    In ``fit`` it reads nothing from the device itself: it looks at the running loss each
    time ``fit`` reads it (for the progress bar, at most every ``REFRESH_SECONDS``, and at
    the end of each epoch). A NaN or an infinity in any batch leaves that sum non-finite,
    so when a read shows one, it reads the batch losses kept since the previous read (one
    transfer) to find the first non-finite batch, and stops: after the current batch when
    the bar's read showed it, else after the epoch. Without a progress bar (``verbose``
    0 or 2 in ``fit``) that is the end of the bad batch's epoch.

    It reports the epoch and batch of the first non-finite loss and the first layer, in
    forward order, with a non-finite gradient when it stops (where the blow-up entered
    the backward pass, or the layer nearest the input that it reached).

    Args:
        verbose: print the report (default 1).

    Attributes:
        report: ``{"epoch", "batch", "loss", "layer", "parameter"}`` (0-based indices;
            ``layer`` and ``parameter`` None when every gradient is finite), or None while
            training is healthy.
        message: the report as a sentence, or None.
    """

    def __init__(self, verbose: int = 1):
        self.verbose = verbose
        self.report: dict[str, Any] | None = None
        self.message: str | None = None
        self._epoch = 0
        self._pending: dict[int, Any] = {}  # batch -> its loss, since the last read

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.report, self.message = None, None

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch, self._pending = epoch, {}

    def on_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._pending[batch] = (logs or {}).get("loss", 0.0)
        if getattr(self.trainer, "read_batch", batch) != batch:
            return  # fit has not read the running loss since this batch: wait for it
        running = getattr(self.trainer, "read_logs", {}).get("loss")
        if running is None or not math.isfinite(running):
            self._stop()
        else:
            self._pending = {}

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        loss = (logs or {}).get("loss", 0.0)
        if self._pending and self.report is None and not math.isfinite(loss):
            self._stop()
        self._pending = {}

    def _stop(self) -> None:
        losses = read(self._pending)
        self._pending = {}
        bad = [batch for batch, loss in losses.items() if not math.isfinite(loss)]
        if not bad:
            return  # the running sum overflowed, not a batch: nothing to stop for
        batch = bad[0]
        layer, parameter = first_nonfinite_gradient(self.model)
        self.report = {
            "epoch": self._epoch,
            "batch": batch,
            "loss": losses[batch],
            "layer": layer,
            "parameter": parameter,
        }
        where = (
            f"first non-finite gradient in layer {layer!r}, parameter {parameter!r}"
            if layer is not None
            else "every gradient is finite"
        )
        self.message = (
            f"TerminateOnNaN: loss is {losses[batch]} at epoch {self._epoch + 1}, batch "
            f"{batch + 1}; {where}; stopping"
        )
        if self.verbose:
            print(self.message)
        if self.trainer is not None:
            self.trainer.stop_training = True


def first_nonfinite_gradient(model: Any) -> tuple[str | None, str | None]:
    """``(layer name, parameter name)`` of the first non-finite gradient in forward order.

    ``(None, None)`` when every gradient is finite. The layer name is its dotted path in
    the model (``"2"`` for the third layer of a Sequential; ``""`` for the model itself).
    """
    for layer_name, layer in model.layers():
        for parameter_name, parameter in layer.named_parameters():
            if "." in parameter_name or parameter.grad is None:
                continue  # a sub-layer's parameter: checked with that layer
            xp = namespace(parameter.grad)
            if not bool(xp.all(xp.isfinite(parameter.grad))):
                return layer_name, parameter_name
    return None, None
