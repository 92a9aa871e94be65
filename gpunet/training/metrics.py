"""Metrics for ``fit`` and ``evaluate``: functions ``metric(pred, target) -> 0-d array``.

A metric returns the mean over the batch as a 0-d array on the device, so the training
loop can add it up without waiting for the GPU; the loop weights each batch by its size,
and ``read`` brings the sums to the host, all of them in one transfer.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

from gpunet import backend
from gpunet.backend import namespace

Metric = Callable[[Any, Any], Any]


def accuracy(pred: Any, target: Any, threshold: float = 0.5) -> Any:
    """The fraction of correct predictions in the batch, a 0-d array.

    Two cases:

    * ``(N, C)`` scores with integer labels ``(N,)``: the predicted class is
      ``argmax(pred, axis=1)``;
    * ``(N, 1)`` (or ``(N,)``) probabilities with 0/1 targets of the same shape: the
      prediction is ``pred > threshold``.

    Args:
        pred: the model's output.
        target: labels or 0/1 targets.
        threshold: decision threshold of the single-output case (default 0.5, for
            sigmoid outputs; 0.0 for logits).

    Raises:
        ValueError: for any other pair of shapes.
    """
    xp = namespace(pred, target)
    pred_shape, target_shape = tuple(pred.shape), tuple(target.shape)
    if len(pred_shape) == 2 and pred_shape[1] > 1 and target_shape == pred_shape[:1]:
        predicted = xp.argmax(pred, axis=1)
        hits = predicted == xp.astype(target, predicted.dtype, copy=False)
    elif pred_shape == target_shape and (
        len(pred_shape) == 1 or (len(pred_shape) == 2 and pred_shape[1] == 1)
    ):
        hits = (pred > threshold) == (target > 0.5)
    else:
        raise ValueError(
            "accuracy: expected (N, C) scores with integer labels (N,), or (N, 1) "
            f"probabilities with 0/1 targets (N, 1); got pred {pred_shape} and target "
            f"{target_shape}"
        )
    return xp.mean(xp.astype(hits, pred.dtype))


def resolve(metrics: Iterable[Any], loss_fn: Any = None) -> dict[str, Metric]:
    """Metric functions by log name from names (``"accuracy"``) or callables.

    A callable is logged under its ``__name__``. ``"accuracy"`` thresholds single
    outputs at 0 when ``loss_fn`` works on logits (``loss_fn.from_logits``), else at 0.5.

    Raises:
        ValueError: for an unknown name or a name used twice.
    """
    if isinstance(metrics, str):
        metrics = (metrics,)
    resolved: dict[str, Metric] = {}
    for metric in metrics:
        if callable(metric):
            label = getattr(metric, "__name__", type(metric).__name__)
            function = metric
        elif metric in ("accuracy", "acc"):
            label = "accuracy"
            threshold = 0.0 if getattr(loss_fn, "from_logits", False) else 0.5
            function = functools.partial(accuracy, threshold=threshold)
        else:
            raise ValueError(
                f"fit: unknown metric {metric!r}; use 'accuracy' or a function "
                "metric(pred, target) returning the batch mean"
            )
        if label in resolved or label == "loss":
            raise ValueError(f"fit: metric name {label!r} is used twice")
        resolved[label] = function
    return resolved


def read(values: dict[Any, Any]) -> dict[Any, float]:
    """``values`` (0-d arrays on the device, or Python numbers) as Python floats.

    The arrays are stacked on the device and copied to the host in one transfer, so a
    GPU is waited for once however many numbers are read.
    """
    arrays = {key: value for key, value in values.items() if not isinstance(value, int | float)}
    found = {key: float(value) for key, value in values.items() if key not in arrays}
    if arrays:
        xp = namespace(*arrays.values())
        stacked = xp.stack([xp.astype(value, xp.float64) for value in arrays.values()])
        found.update(zip(arrays, backend.to_numpy(stacked).tolist(), strict=True))
    return {key: found[key] for key in values}
