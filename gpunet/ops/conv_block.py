"""A convolution block as one op: conv2d -> relu, or conv2d -> relu -> 2x2 max-pool.

The reference is the three ops one after the other (``conv2d``, ``relu``,
``max_pool2d``), and it is the oracle of the kernel ops ``conv2d_relu_forward`` and
``conv2d_relu_backward`` (``gpunet.kernels.conv_block``, NumPy), which run the block in
one pass over the convolution's output and store neither the ReLU's output nor, when
pooled, the unpooled activation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gpunet import backend, kernels
from gpunet.backend import namespace
from gpunet.ops import activations
from gpunet.ops.conv import Pair, conv2d, conv2d_backward
from gpunet.ops.pool import max_pool2d, max_pool2d_backward

for _op in ("conv2d_relu_forward", "conv2d_relu_backward"):
    kernels.register(_op, "conv_block")

_WINDOW = (2, 2)


@dataclass
class BlockCache:
    """What ``conv2d_relu_backward`` needs from the forward pass."""

    saved: Any  # the kernel's saved arrays, or the reference's (conv cache, y, pool cache)
    x_shape: tuple
    stride: Pair
    padding: Pair
    dilation: Pair
    fast: bool


def fused_kernel_available(xp: Any) -> bool:
    """Whether the backend has the one-pass kernels (else the block is three ops)."""
    return backend.kernel("conv2d_relu_forward", xp) is not None


def conv2d_relu(
    x: Any,
    weight: Any,
    bias: Any,
    stride: Pair,
    padding: Pair,
    dilation: Pair,
    pool: bool = False,
    workspace: dict | None = None,
) -> tuple[Any, BlockCache]:
    """``relu(conv2d(x))``, or with ``pool`` its max over 2x2 windows at stride 2.

    Args:
        x, weight, bias, stride, padding, dilation: as ``gpunet.ops.conv.conv2d``.
        pool: max-pool the activation over 2x2 windows at stride 2 (the convolution's
            output height and width must be even).
        workspace: scratch buffers the kernel may reuse between calls.

    Returns:
        ``(y, cache)``.
    """
    xp = namespace(x, weight)
    geometry = (stride, padding, dilation)
    fast = backend.kernel("conv2d_relu_forward", xp)
    if fast is not None:
        y, saved = fast(x, weight, bias, *geometry, pool=pool, workspace=workspace)
        return y, BlockCache(saved, tuple(x.shape), *geometry, True)
    z, conv_cache = conv2d(x, weight, bias, *geometry, workspace=workspace)
    y = activations.relu(z)
    pool_cache = None
    if pool:
        y_pooled, pool_cache = max_pool2d(y, _WINDOW, _WINDOW)
        saved = (conv_cache, y, pool_cache)
        y = y_pooled
    else:
        saved = (conv_cache, y, None)
    return y, BlockCache(saved, tuple(x.shape), *geometry, False)


def conv2d_relu_backward(
    grad_out: Any,
    cache: BlockCache,
    weight: Any,
    input_grad: bool = True,
    workspace: dict | None = None,
) -> tuple[Any, Any, Any]:
    """Gradients ``(d x or None, d weight, d bias)`` of ``conv2d_relu``."""
    xp = namespace(grad_out, weight)
    if cache.fast:
        fast = backend.kernel("conv2d_relu_backward", xp)
        geometry = (cache.x_shape, cache.stride, cache.padding, cache.dilation)
        return fast(grad_out, cache.saved, weight, *geometry, input_grad, workspace)
    conv_cache, y, pool_cache = cache.saved
    if pool_cache is not None:
        grad_out = max_pool2d_backward(grad_out, pool_cache)
    grad_z = activations.relu_backward(grad_out, None, y)
    return conv2d_backward(grad_z, conv_cache, weight, input_grad, workspace)
