"""Losses: ``loss = loss_fn(pred, target)`` returns a 0-d array on the device,
``loss_fn.backward()`` returns d loss / d pred for the last call.

Every loss averages over the batch (PyTorch's ``reduction="mean"``).
"""

from __future__ import annotations

import math
from typing import Any

from gpunet import backend
from gpunet.backend import namespace
from gpunet.ops.activations import log_softmax, sigmoid, softmax

# log(p) is clamped at -100, as PyTorch's BCELoss does, so p = 0 gives a finite loss.
_LOG_FLOOR = -100.0


class Loss:
    """Base class: subclasses implement ``forward`` and ``backward``."""

    def __call__(self, pred: Any, target: Any) -> Any:
        return self.forward(pred, target)

    def forward(self, pred: Any, target: Any) -> Any:
        raise NotImplementedError

    def backward(self) -> Any:
        raise NotImplementedError

    def _same_shape(self, pred: Any, target: Any) -> None:
        if tuple(pred.shape) != tuple(target.shape):
            raise ValueError(
                f"{type(self).__name__}: pred shape {tuple(pred.shape)} and target shape "
                f"{tuple(target.shape)} differ; they must be equal"
            )

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class MSE(Loss):
    """Mean squared error: mean((pred - target)**2) over all elements.

    Shapes:
        pred and target of the same shape.
    """

    def forward(self, pred: Any, target: Any) -> Any:
        self._same_shape(pred, target)
        xp = namespace(pred, target)
        diff = pred - _as_dtype(target, pred)
        self._diff = diff
        return _mean(xp, diff * diff)

    def backward(self) -> Any:
        diff = self._diff
        return diff * (2.0 / math.prod(diff.shape))


class BinaryCrossEntropy(Loss):
    """Binary cross-entropy, -mean(t log p + (1 - t) log(1 - p)).

    Args:
        from_logits: if True, ``pred`` holds logits z and p = sigmoid(z) is applied
            inside, in a form that never overflows (default False: ``pred`` holds
            probabilities, and log p is clamped at -100 as in PyTorch).

    Shapes:
        pred and target of the same shape; targets in [0, 1].
    """

    def __init__(self, from_logits: bool = False):
        self.from_logits = from_logits

    def forward(self, pred: Any, target: Any) -> Any:
        self._same_shape(pred, target)
        xp = namespace(pred, target)
        target = _as_dtype(target, pred)
        self._saved = (pred, target)
        if self.from_logits:
            # max(z, 0) - z t + log(1 + exp(-|z|))
            losses = xp.maximum(pred, 0) - pred * target + xp.log1p(xp.exp(-xp.abs(pred)))
        else:
            log_p, log_not_p = _clamped_log(xp, pred), _clamped_log(xp, 1 - pred)
            losses = -(target * log_p + (1 - target) * log_not_p)
        return _mean(xp, losses)

    def backward(self) -> Any:
        pred, target = self._saved
        xp = namespace(pred)
        scale = 1.0 / math.prod(pred.shape)
        if self.from_logits:
            return (sigmoid(pred) - target) * scale
        # PyTorch's BCELoss backward: (p - t) / max(p (1 - p), 1e-12)
        return (pred - target) / xp.maximum(pred * (1 - pred), 1e-12) * scale

    def __repr__(self) -> str:
        return f"BinaryCrossEntropy(from_logits={self.from_logits})"


class CrossEntropy(Loss):
    """Softmax cross-entropy from logits with integer class labels, mean over the batch.

    loss = mean_i( -log softmax(z_i)[y_i] ); gradient (softmax(z) - onehot(y)) / N.

    Shapes:
        pred: logits ``(N, C)``; target: integer labels ``(N,)`` in [0, C).
    """

    def forward(self, pred: Any, target: Any) -> Any:
        if pred.ndim != 2:
            raise ValueError(f"CrossEntropy: expected logits (N, C), got shape {tuple(pred.shape)}")
        if target.ndim != 1 or target.shape[0] != pred.shape[0]:
            raise ValueError(
                f"CrossEntropy: expected integer labels of shape ({pred.shape[0]},), "
                f"got shape {tuple(target.shape)}"
            )
        xp = namespace(pred, target)
        if not xp.isdtype(target.dtype, "integral"):
            raise ValueError(
                f"CrossEntropy: expected integer class labels, got dtype {target.dtype}"
            )
        n_classes = pred.shape[1]
        one_hot = _one_hot(xp, target, n_classes, pred.dtype)
        self._check_labels(xp, target, n_classes)
        log_probs = log_softmax(pred, axis=1)
        self._saved = (pred, one_hot)
        return -xp.sum(log_probs * one_hot) / pred.shape[0]

    def _check_labels(self, xp: Any, target: Any, n_classes: int) -> None:
        if backend.library_of(target) == "cupy":
            return  # a check would stop the GPU; out-of-range rows give a NaN loss instead
        low, high = int(xp.min(target)), int(xp.max(target))
        if low < 0 or high >= n_classes:
            raise ValueError(
                f"CrossEntropy: labels must be in [0, {n_classes - 1}] for {n_classes} "
                f"classes, got labels in [{low}, {high}]"
            )

    def backward(self) -> Any:
        pred, one_hot = self._saved
        return (softmax(pred, axis=1) - one_hot) / pred.shape[0]


def _one_hot(xp: Any, labels: Any, n_classes: int, dtype: Any) -> Any:
    classes = xp.arange(n_classes, dtype=labels.dtype)
    hot = xp.astype(labels[:, None] == classes[None, :], dtype)
    if backend.library_of(labels) == "cupy":
        # A label outside [0, C) matches no class: poison its row so the loss is NaN.
        hot = xp.where(xp.sum(hot, axis=1, keepdims=True) > 0, hot, math.nan)
    return hot


def _clamped_log(xp: Any, p: Any) -> Any:
    """max(log p, -100), with log 0 never evaluated (no warning)."""
    positive = p > 0
    return xp.where(
        positive, xp.maximum(xp.log(xp.where(positive, p, 1.0)), _LOG_FLOOR), _LOG_FLOOR
    )


def _mean(xp: Any, values: Any) -> Any:
    # sum * (1/n): NumPy's mean goes through a slow Python-level path for small arrays.
    return xp.sum(values) * (1.0 / math.prod(values.shape))


def _as_dtype(target: Any, pred: Any) -> Any:
    if target.dtype == pred.dtype:
        return target
    return namespace(target).astype(target, pred.dtype)
