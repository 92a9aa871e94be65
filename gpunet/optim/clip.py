"""Gradient clipping: the cure for exploding gradients."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from gpunet.backend import namespace
from gpunet.nn.parameter import Parameter

# PyTorch adds this to the norm before dividing, so a zero norm never divides by zero.
_NORM_EPS = 1e-6


def _with_grads(params: Any, caller: str) -> list[Parameter]:
    if hasattr(params, "parameters"):
        params = params.parameters()
    elif isinstance(params, Parameter):
        params = [params]
    params = list(params)
    for index, p in enumerate(params):
        if not isinstance(p, Parameter):
            raise TypeError(
                f"{caller}: parameter {index} is {type(p).__name__}, not a Parameter "
                f"(pass model.parameters())"
            )
    return [p for p in params if p.grad is not None]


def clip_grad_norm(
    params: Iterable[Parameter] | Any, max_norm: float, norm_type: float = 2.0
) -> Any:
    """Rescale the gradients so that their total norm is at most ``max_norm``.

    The total norm is taken over all gradients together, as if they were one vector:
    ``total = (sum_p sum |g_p|**norm_type) ** (1 / norm_type)`` (the largest ``|g|`` for
    ``norm_type=inf``). When ``total > max_norm`` every gradient is multiplied by
    ``max_norm / (total + 1e-6)``, PyTorch's rule; the direction is kept. Everything
    stays on the device: the factor is applied without reading the norm on the host.

    Args:
        params: parameters (or a model) whose ``.grad`` to clip; those without a gradient
            are skipped.
        max_norm: the largest allowed total norm (> 0).
        norm_type: the p of the p-norm (default 2; ``math.inf`` for the max norm).

    Returns:
        The total norm before clipping, a 0-d array (0.0 when no parameter has a gradient).
    """
    if not max_norm > 0:
        raise ValueError(f"clip_grad_norm: max_norm must be > 0, got {max_norm!r}")
    if not norm_type > 0:
        raise ValueError(f"clip_grad_norm: norm_type must be > 0, got {norm_type!r}")
    params = _with_grads(params, "clip_grad_norm")
    if not params:
        return 0.0
    xp = namespace(*(p.grad for p in params))
    if norm_type == math.inf:
        total = xp.max(xp.stack([xp.max(xp.abs(p.grad)) for p in params]))
    elif norm_type == 2:
        total = xp.sqrt(sum(xp.sum(p.grad * p.grad) for p in params))
    else:
        total = sum(xp.sum(xp.abs(p.grad) ** norm_type) for p in params) ** (1 / norm_type)
    factor = xp.clip(max_norm / (total + _NORM_EPS), max=1.0)
    for p in params:
        p.grad = p.grad * xp.astype(factor, p.grad.dtype)
    return total


def clip_grad_value(params: Iterable[Parameter] | Any, clip_value: float) -> None:
    """Clip every gradient element into ``[-clip_value, clip_value]``.

    Args:
        params: parameters (or a model) whose ``.grad`` to clip.
        clip_value: the largest allowed ``|g|`` (> 0).
    """
    if not clip_value > 0:
        raise ValueError(f"clip_grad_value: clip_value must be > 0, got {clip_value!r}")
    for p in _with_grads(params, "clip_grad_value"):
        p.grad = namespace(p.grad).clip(p.grad, -clip_value, clip_value)
