"""Batch normalisation, forward and backward, with PyTorch's running statistics.

Over the axes ``axes`` (all but the feature axis), with ``m`` values per feature:

    training:  mu = mean(x),  var = mean((x - mu)**2)           (biased, to normalise)
               running_mean <- (1 - momentum) * running_mean + momentum * mu
               running_var  <- (1 - momentum) * running_var  + momentum * var * m / (m - 1)
    eval:      mu, var = running_mean, running_var
    both:      x_hat = (x - mu) / sqrt(var + eps),   y = weight * x_hat + bias

Backward in training mode, where mu and var depend on x:

    d x = (weight / sqrt(var + eps)) * (g - mean(g) - x_hat * mean(g * x_hat))

and in eval mode ``d x = g * weight / sqrt(running_var + eps)``. In both,
``d weight = sum(g * x_hat)`` and ``d bias = sum(g)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from gpunet.backend import namespace


@dataclass
class BatchNormCache:
    """What ``batch_norm_backward`` needs from the forward pass."""

    x_hat: Any
    inv_std: Any  # 1 / sqrt(var + eps), broadcastable against x
    axes: tuple[int, ...]
    training: bool


def _broadcastable(v: Any, ndim: int) -> Any:
    """A per-feature vector ``(C,)`` shaped ``(1, C, 1, ...)`` for an ``ndim`` array."""
    return namespace(v).reshape(v, (1, v.shape[0]) + (1,) * (ndim - 2))


def batch_norm(
    x: Any,
    weight: Any,
    bias: Any,
    running_mean: Any,
    running_var: Any,
    training: bool,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> tuple[Any, Any, Any, BatchNormCache]:
    """Normalise ``x`` per feature (axis 1).

    Args:
        x: ``(N, C)`` or ``(N, C, H, W)`` (any ``(N, C, ...)``).
        weight, bias: ``(C,)``, or None for no affine transform.
        running_mean, running_var: ``(C,)``; used in eval mode, updated in training.
        training: use the batch statistics and update the running ones.
        momentum: weight of the new batch in the running statistics (default 0.1).
        eps: added to the variance (default 1e-5).

    Returns:
        ``(y, running_mean, running_var, cache)``: the new running statistics are new
        arrays (the old ones are unchanged; they are returned as-is in eval mode).
    """
    xp = namespace(x)
    axes = (0,) + tuple(range(2, x.ndim))
    if training:
        mean = xp.mean(x, axis=axes)
        centered = x - _broadcastable(mean, x.ndim)
        var = xp.mean(centered * centered, axis=axes)
        count = math.prod(x.shape) // x.shape[1]
        unbiased = var * (count / max(count - 1, 1))
        running_mean = (1 - momentum) * running_mean + momentum * mean
        running_var = (1 - momentum) * running_var + momentum * unbiased
    else:
        centered = x - _broadcastable(running_mean, x.ndim)
        var = running_var
    inv_std = _broadcastable(1.0 / xp.sqrt(var + eps), x.ndim)
    x_hat = centered * inv_std
    y = x_hat
    if weight is not None:
        y = x_hat * _broadcastable(weight, x.ndim) + _broadcastable(bias, x.ndim)
    return y, running_mean, running_var, BatchNormCache(x_hat, inv_std, axes, training)


def batch_norm_backward(grad_out: Any, cache: BatchNormCache, weight: Any) -> tuple[Any, Any, Any]:
    """Gradients of ``batch_norm``: ``(d x, d weight, d bias)`` (None for no affine)."""
    xp = namespace(grad_out)
    ndim = grad_out.ndim
    axes = cache.axes
    weight_grad = bias_grad = None
    scale = cache.inv_std
    if weight is not None:
        weight_grad = xp.sum(grad_out * cache.x_hat, axis=axes)
        bias_grad = xp.sum(grad_out, axis=axes)
        scale = scale * _broadcastable(weight, ndim)
    if not cache.training:
        return grad_out * scale, weight_grad, bias_grad
    grad_mean = xp.mean(grad_out, axis=axes, keepdims=True)
    projection = xp.mean(grad_out * cache.x_hat, axis=axes, keepdims=True)
    grad_in = scale * (grad_out - grad_mean - cache.x_hat * projection)
    return grad_in, weight_grad, bias_grad
