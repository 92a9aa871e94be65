"""TerminateOnNaN: stop at the first non-finite loss and say where it came from."""

from __future__ import annotations

import math
from typing import Any

from gpunet.backend import namespace
from gpunet.callbacks.base import Callback


class TerminateOnNaN(Callback):
    """Stop training after the first batch whose loss is NaN or infinite.

    It reports the epoch, the batch and the first layer, in forward order, with a
    non-finite gradient (where the blow-up entered the backward pass, or the layer
    nearest the input that it reached). On a GPU it reads each batch's loss, which waits
    for that batch to finish.

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

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.report, self.message = None, None

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch = epoch

    def on_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        loss = float((logs or {}).get("loss", 0.0))
        if math.isfinite(loss):
            return
        layer, parameter = first_nonfinite_gradient(self.model)
        self.report = {
            "epoch": self._epoch,
            "batch": batch,
            "loss": loss,
            "layer": layer,
            "parameter": parameter,
        }
        where = (
            f"first non-finite gradient in layer {layer!r}, parameter {parameter!r}"
            if layer is not None
            else "every gradient is finite"
        )
        self.message = (
            f"TerminateOnNaN: loss is {loss} at epoch {self._epoch + 1}, batch {batch + 1}; "
            f"{where}; stopping"
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
