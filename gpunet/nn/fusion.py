"""Blocks of layers that ``Sequential`` runs as one: Conv2D -> ReLU (-> MaxPool2D 2x2).

A convolution followed by a ReLU, and by a max-pool over 2x2 windows at stride 2, is run
by ``gpunet.ops.conv_block`` in one pass over the convolution's output where the backend
has its kernel (NumPy): the same numbers as the layers one after the other, with two or
three fewer passes over the largest activations of a CNN and without storing the ReLU's
output. Elsewhere, and for any other sequence, the layers run one by one.

Inside ``Sequential`` the block stands for its layers: its forward and backward are the
layers', and the layers' parameters receive their gradients as usual. Call the layers'
own ``backward`` only after their own ``forward``.
"""

from __future__ import annotations

from typing import Any

from gpunet import checks
from gpunet.backend import namespace
from gpunet.nn.activations import ReLU
from gpunet.nn.conv import Conv2D
from gpunet.nn.layer import Layer
from gpunet.nn.pool import MaxPool2D
from gpunet.ops.conv_block import conv2d_relu, conv2d_relu_backward, fused_kernel_available

_WINDOW = (2, 2)


class ConvBlock:
    """Conv2D -> ReLU (-> MaxPool2D 2x2 at stride 2) run as one op.

    Args:
        conv: the convolution.
        relu: the ReLU after it.
        pool: the max-pool after the ReLU, or None.
    """

    def __init__(self, conv: Conv2D, relu: ReLU, pool: MaxPool2D | None = None):
        self.conv, self.relu, self.pool = conv, relu, pool
        self._cache = self._output = None
        self._pooled_apart = False

    def __call__(self, x: Any) -> Any:
        conv = self.conv
        x = conv.checked_input(x, like=conv.weight.data)
        conv.check_input(x)
        pool = self.pool is not None
        oh, ow = conv.output_shape(tuple(x.shape))[2:]
        self._pooled_apart = pool and (oh % 2 or ow % 2)  # windows that do not tile
        bias = conv.bias.data if conv.bias is not None else None
        y, self._cache = conv2d_relu(
            x, conv.weight.data, bias, conv.stride, conv.padding, conv.dilation,
            pool=pool and not self._pooled_apart, workspace=conv.workspace,
        )  # fmt: skip
        for layer in (conv, self.relu, self.pool):  # their own backward has nothing to use
            if layer is not None:
                layer._cache = layer._output = None
        if self._pooled_apart:
            return self.pool(y)
        self._output = (y.shape, y.dtype, type(y))
        return y

    def backward(self, grad_out: Any) -> Any:
        if self._pooled_apart:
            grad_out = self.pool.backward(grad_out)
        else:
            last = self.relu if self.pool is None else self.pool
            grad_out = checks.gradient(grad_out, (last, "backward"), self._output)
        conv = self.conv
        grad_in, weight_grad, bias_grad = conv2d_relu_backward(
            grad_out, self._cache, conv.weight.data, conv.input_grad, conv.workspace
        )
        conv.accumulate(weight_grad, bias_grad)
        return grad_in


def _pools_2x2(layer: Layer) -> bool:
    return (
        type(layer) is MaxPool2D
        and layer.kernel_size == _WINDOW
        and layer.stride == _WINDOW
        and layer.padding == (0, 0)
    )


def stages(layers: list[Layer], x: Any) -> list[tuple[ConvBlock | None, int]]:
    """The layers as ``(block, index of its first layer)`` pairs: each
    Conv2D -> ReLU (-> 2x2 MaxPool2D) one ``ConvBlock`` where the backend of ``x`` has
    the fused kernel, every other layer a stage of its own (``block`` None: the layer at
    ``index`` runs as itself)."""
    if not _is_array(x) or not fused_kernel_available(namespace(x)):
        return [(None, index) for index in range(len(layers))]
    found, index = [], 0
    while index < len(layers):
        layer = layers[index]
        follows = layers[index + 1 : index + 3]
        if type(layer) is Conv2D and follows and type(follows[0]) is ReLU:
            pool = follows[1] if len(follows) > 1 and _pools_2x2(follows[1]) else None
            found.append((ConvBlock(layer, follows[0], pool), index))
            index += 3 if pool is not None else 2
        else:
            found.append((None, index))
            index += 1
    return found


def _is_array(x: Any) -> bool:
    # anything else reaches the first layer, which names what it expected
    return hasattr(x, "shape") and hasattr(x, "__array_namespace__")
