"""Losses: ``loss = loss_fn(pred, target)`` returns a 0-d array on the device,
``loss_fn.backward()`` returns d loss / d pred for the last call.

Every loss averages over the batch (PyTorch's ``reduction="mean"``). Inputs are checked
first (``gpunet.checks``): ``pred`` is a non-empty array of real numbers (floating kept,
integers cast to float32); a target of real numbers is cast to ``pred``'s dtype; class
labels are integers (or whole floats) in range.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gpunet import backend, checks
from gpunet.backend import namespace
from gpunet.ops.activations import log_softmax, sigmoid, softmax

# log(p) is clamped at -100, as PyTorch's BCELoss does, so p = 0 gives a finite loss.
_LOG_FLOOR = -100.0


class Loss:
    """Base class: subclasses implement ``forward`` and ``backward``.

    ``forward`` saves what ``backward`` needs in ``_saved``; ``backward`` before any
    forward raises ``RuntimeError``.
    """

    _saved: Any = None

    def __call__(self, pred: Any, target: Any) -> Any:
        return self.forward(pred, target)

    def forward(self, pred: Any, target: Any) -> Any:
        raise NotImplementedError

    def backward(self) -> Any:
        raise NotImplementedError

    def _checked_pair(self, pred: Any, target: Any) -> tuple[Any, Any]:
        """``pred`` and ``target`` of one shape, ``target`` cast to ``pred``'s dtype."""
        if (
            type(pred) is np.ndarray  # the common case, answered from dtypes and shapes
            and type(target) is np.ndarray
            and pred.dtype is target.dtype
            and pred.dtype.kind == "f"
            and pred.shape == target.shape
            and pred.ndim
            and pred.shape[0]
        ):
            return pred, target
        where = (self, "forward")
        pred = checks.floating(pred, where, what="pred")
        target = checks.floating(target, where, pred.dtype, what="target", like=pred)
        if tuple(pred.shape) != tuple(target.shape):
            raise ValueError(
                f"{type(self).__name__}.forward: pred shape {tuple(pred.shape)} and target "
                f"shape {tuple(target.shape)} differ; they must be equal"
            )
        if not pred.shape or not pred.shape[0]:
            checks.nonempty(pred, where, "pred")
        return pred, target

    def _last(self) -> Any:
        """What the last forward saved (RuntimeError before any forward)."""
        if self._saved is None:
            checks.after_forward(None, (self, "backward"))
        return self._saved

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class MSE(Loss):
    """Mean squared error: mean((pred - target)**2) over all elements.

    Shapes:
        pred and target of the same shape.
    """

    def forward(self, pred: Any, target: Any) -> Any:
        pred, target = self._checked_pair(pred, target)
        diff = pred - target
        self._saved = diff
        return _mean(namespace(diff), diff * diff)

    def backward(self) -> Any:
        diff = self._last()
        return diff * (2.0 / math.prod(diff.shape))


class BinaryCrossEntropy(Loss):
    """Binary cross-entropy, -mean(t log p + (1 - t) log(1 - p)).

    Args:
        from_logits: if True, ``pred`` holds logits z and p = sigmoid(z) is applied
            inside, in a form that never overflows (default False: ``pred`` holds
            probabilities, and log p is clamped at -100 as in PyTorch).

    Shapes:
        pred and target of the same shape; targets in [0, 1], and probabilities in
        [0, 1] unless ``from_logits``: a value outside raises ``ValueError`` (on CuPy,
        where a check would wait for the GPU, the loss is NaN instead). NaN passes, so
        a diverged model shows a NaN loss.
    """

    def __init__(self, from_logits: bool = False):
        self.from_logits = checks.flag(from_logits, "BinaryCrossEntropy", "from_logits")

    def forward(self, pred: Any, target: Any) -> Any:
        pred, target = self._checked_pair(pred, target)
        xp = namespace(pred)
        not_target = 1 - target
        # t (1 - t) < 0 exactly where t is outside [0, 1] (NaN passes): one reduction
        # checks both arrays, and p (1 - p) is the backward's denominator too.
        spread = target * not_target
        product = not_pred = None
        if not self.from_logits:
            not_pred = 1 - pred
            product = pred * not_pred
            spread = xp.minimum(spread, product)
        outside = self._outside_unit_interval(xp, spread, target)
        if self.from_logits:
            # max(z, 0) - z t + log(1 + exp(-|z|))
            losses = xp.maximum(pred, 0) - pred * target + xp.log1p(xp.exp(-xp.abs(pred)))
        else:
            log_p, log_not_p = _clamped_log(xp, pred), _clamped_log(xp, not_pred)
            losses = -(target * log_p + not_target * log_not_p)
        if outside is not None:  # CuPy: no check on the host, NaN losses instead
            losses = xp.where(outside, math.nan, losses)
        self._saved = (pred, target, product)
        return _mean(xp, losses)

    def _outside_unit_interval(self, xp: Any, spread: Any, target: Any) -> Any:
        """Refuse a probability outside [0, 1] (where ``spread < 0``).

        Returns None, or on CuPy, where reading the answer would wait for the GPU, the
        mask of the values outside (the caller makes their losses NaN).
        """
        if type(spread) is np.ndarray:
            lowest = np.minimum.reduce(spread, axis=None)  # no Python frames on the way
        elif backend.library_of(spread) == "cupy":
            return spread < 0
        else:
            lowest = xp.min(spread)
        if lowest < 0:
            which = "target" if xp.min(target * (1 - target)) < 0 else "pred"
            raise ValueError(
                f"BinaryCrossEntropy.forward: {which} must hold probabilities in [0, 1], "
                "got values outside"
                + ("" if self.from_logits else " (use from_logits=True for logits)")
            )
        return None

    def backward(self) -> Any:
        pred, target, product = self._last()
        xp = namespace(pred)
        scale = 1.0 / math.prod(pred.shape)
        if self.from_logits:
            return (sigmoid(pred) - target) * scale
        # PyTorch's BCELoss backward: (p - t) / max(p (1 - p), 1e-12)
        return (pred - target) / xp.maximum(product, 1e-12) * scale

    def __repr__(self) -> str:
        return f"BinaryCrossEntropy(from_logits={self.from_logits})"


class CrossEntropy(Loss):
    """Softmax cross-entropy from logits with integer class labels, mean over the batch.

    loss = mean_i( -log softmax(z_i)[y_i] ); gradient (softmax(z) - onehot(y)) / N.

    Shapes:
        pred: logits ``(N, C)``; target: integer labels ``(N,)`` in [0, C).
    """

    def forward(self, pred: Any, target: Any) -> Any:
        where = (self, "forward")
        pred = checks.floating(pred, where, what="logits")
        if pred.ndim != 2:
            checks.shape(pred, where, ("N", "C"), "logits")
        if not pred.shape[0]:
            checks.nonempty(pred, where, "logits")
        checks.array(target, where, "target")
        if tuple(target.shape) != (pred.shape[0],):
            checks.shape(target, where, (pred.shape[0],), "integer labels")
        xp = namespace(pred, target)
        n_classes = pred.shape[1]
        target = checks.labels(target, where, n_classes)
        one_hot = _one_hot(xp, target, n_classes, pred.dtype)
        log_probs = log_softmax(pred, axis=1)
        self._saved = (pred, one_hot)
        return -xp.sum(log_probs * one_hot) / pred.shape[0]

    def backward(self) -> Any:
        pred, one_hot = self._last()
        return (softmax(pred, axis=1) - one_hot) / pred.shape[0]


def _one_hot(xp: Any, labels: Any, n_classes: int, dtype: Any) -> Any:
    classes = xp.arange(n_classes, dtype=labels.dtype)
    hot = xp.astype(labels[:, None] == classes[None, :], dtype)
    if backend.library_of(labels) == "cupy":
        # A label outside [0, C) matches no class: poison its row so the loss is NaN.
        hot = xp.where(xp.sum(hot, axis=1, keepdims=True) > 0, hot, math.nan)
    return hot


def _clamped_log(xp: Any, p: Any) -> Any:
    """max(log p, -100) for p in [0, 1] or NaN, with log 0 never evaluated (no warning).

    A NaN stays NaN (maximum propagates it), so a diverged model shows a NaN loss.
    """
    zero = p == 0
    return xp.where(zero, _LOG_FLOOR, xp.maximum(xp.log(xp.where(zero, 1.0, p)), _LOG_FLOOR))


def _mean(xp: Any, values: Any) -> Any:
    # sum * (1/n): NumPy's mean goes through a slow Python-level path for small arrays.
    return xp.sum(values) * (1.0 / math.prod(values.shape))
