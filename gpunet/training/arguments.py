"""The checks at the entry of ``fit``, ``evaluate`` and ``predict``.

They run before the first batch: the model, the loss, the optimizer and the callbacks
are what the loop needs, and the data are arrays of real numbers (floating or integer;
the layers cast them by the dtype rule). In a distributed run the ranks must hold data
sets of one size, since ``fit`` shards rank 0's order over them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gpunet import checks, distributed
from gpunet.callbacks.base import Callback
from gpunet.nn.layer import Layer
from gpunet.optim.optimizer import Optimizer


def check_model(caller: str, model: Any) -> None:
    """``model`` is a gpunet layer."""
    if not isinstance(model, Layer):
        raise TypeError(
            f"{caller}: model must be a gpunet.nn.Layer (such as Sequential(...)), "
            f"got {_described(model)}"
        )


def check_loss(caller: str, loss_fn: Any) -> None:
    """``loss_fn`` is a loss object: called with (pred, target), with a ``backward``."""
    if isinstance(loss_fn, type):
        raise TypeError(
            f"{caller}: loss_fn is the class {loss_fn.__name__}; pass an instance such as "
            f"{loss_fn.__name__}()"
        )
    if not (callable(loss_fn) and callable(getattr(loss_fn, "backward", None))):
        raise TypeError(
            f"{caller}: loss_fn must be a loss such as gpunet.losses.MSE() (called with "
            f"pred and target, with a backward method), got {_described(loss_fn)}"
        )


def check_training(model: Any, loss_fn: Any, optimizer: Any, callbacks: Any) -> list[Callback]:
    """The non-data arguments of ``fit``; returns the callbacks as a list.

    Raises:
        TypeError: for a model, loss, optimizer or callback of the wrong kind.
        ValueError: for an optimizer that updates none of the model's parameters.
    """
    check_model("fit", model)
    check_loss("fit", loss_fn)
    if isinstance(optimizer, type) or not isinstance(optimizer, Optimizer):
        raise TypeError(
            "fit: optimizer must be a gpunet optimizer such as SGD(model.parameters(), "
            f"lr=0.1), got {_described(optimizer)}"
        )
    own = {id(p) for p in model.parameters()}
    if own and not any(id(p) in own for p in optimizer.params):
        raise ValueError(
            "fit: the optimizer updates none of the model's parameters (was it made for "
            "another model?); make it with optimizer_class(model.parameters(), ...)"
        )
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback) or not isinstance(callbacks, Iterable):
        raise TypeError(
            f"fit: callbacks must be a list of gpunet.callbacks.Callback objects, got "
            f"{_described(callbacks)}"
        )
    callbacks = list(callbacks)
    for index, callback in enumerate(callbacks):
        if isinstance(callback, type) or not isinstance(callback, Callback):
            raise TypeError(
                f"fit: callbacks[{index}] is {_described(callback)}, not a gpunet Callback; "
                "subclass gpunet.callbacks.Callback and override a hook such as on_epoch_end"
            )
    return callbacks


def check_data(caller: str, x: Any, y: Any = None, validation_data: Any = None) -> None:
    """``x``, ``y`` and the parts of ``validation_data`` (where given): non-empty arrays
    of real numbers with samples on axis 0.

    Raises:
        TypeError: for a list or other non-array, or complex, boolean, object or string
            data.
        ValueError: for a 0-d array or one with no samples.
    """
    data = {"x": x, "y": y}
    if isinstance(validation_data, tuple | list) and len(validation_data) == 2:
        data.update({"validation x": validation_data[0], "validation y": validation_data[1]})
    for label, value in data.items():
        if value is None:
            continue
        checks.real(value, caller, label)
        if not value.shape or not value.shape[0]:
            raise ValueError(
                f"{caller}: {label} must hold samples on axis 0, got shape {tuple(value.shape)}"
            )


def check_same_data_on_every_rank(x: Any, y: Any) -> None:
    """In a distributed run, every rank holds data sets of one length and sample shape.

    ``fit`` visits rank 0's order of the samples on every rank, so a rank with fewer
    samples would index past its end. Raises the same ``ValueError`` on every rank,
    before the first step.
    """
    if not distributed.is_initialized():
        return
    distributed.check_same_on_every_rank("fit", "data", {"x": tuple(x.shape), "y": tuple(y.shape)})


def _described(value: Any) -> str:
    if isinstance(value, type):
        return f"the class {value.__name__}"
    if callable(value) and hasattr(value, "__name__") and not hasattr(value, "__self__"):
        return f"the function {value.__name__}"
    return f"{type(value).__name__} {value!r}"[:120]
