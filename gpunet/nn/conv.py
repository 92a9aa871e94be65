"""Conv2D: 2-D convolution over NCHW images, as im2col + one GEMM."""

from __future__ import annotations

import math
from typing import Any

from gpunet import checks, regularizers
from gpunet import init as initializers
from gpunet.nn.layer import Layer
from gpunet.nn.parameter import Parameter
from gpunet.ops.conv import conv2d, conv2d_backward, output_hw, pair


def torch_default(shape: tuple[int, ...], *, dtype: Any = None) -> Any:
    """PyTorch's default for convolution weights and biases: U(-b, b), b = 1/sqrt(fan_in).

    This is ``kaiming_uniform(a=sqrt(5))``; ``fan_in`` is ``in_ch*kh*kw`` of the weight,
    whose shape the bias initialiser is given too.
    """
    fan_in, _ = initializers.fans(shape)
    bound = 1.0 / math.sqrt(fan_in)
    return initializers.uniform(shape, low=-bound, high=bound, dtype=dtype)


class Conv2D(Layer):
    """2-D convolution (cross-correlation, as PyTorch's ``Conv2d``) over NCHW input.

    Args:
        in_channels: channels of the input.
        out_channels: channels of the output (number of filters).
        kernel_size: int or ``(kh, kw)``.
        stride: int or pair, >= 1 (default 1).
        padding: int or pair of zero rows/columns added on each side, >= 0 (default 0).
        dilation: int or pair, spacing between kernel taps, >= 1 (default 1).
        bias: learn a bias per output channel (default True).
        init: initialiser of the weight, a name from ``gpunet.init`` or a function
            ``f(shape, dtype=...)`` (default ``"torch_default"``: PyTorch's
            U(-1/sqrt(fan_in), 1/sqrt(fan_in)), also used for the bias; with any other
            initialiser the bias starts at zero). ``"he_uniform"`` suits deep ReLU stacks.
        regularizer: a penalty on the weight such as ``gpunet.regularizers.L2(1e-4)``
            (default None); its gradient is added in backward.
        dtype: parameter dtype (default float32).

    Shapes:
        input ``(N, in_channels, H, W)``; output ``(N, out_channels, OH, OW)`` with
        ``OH = floor((H + 2*padding - dilation*(kh - 1) - 1) / stride) + 1`` (same for W).
        ``weight`` is ``(out_channels, in_channels, kh, kw)``, ``bias``
        ``(out_channels,)``, as PyTorch, so weights load from a PyTorch model.

    Attributes:
        input_grad: compute the input gradient in backward (default True). Set it to
            False on a network's first layer, whose input needs no gradient: backward
            then returns None and skips the col2im pass.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        bias: bool = True,
        init: Any = "torch_default",
        regularizer: Any = None,
        dtype: Any = None,
    ):
        channels = pair((in_channels, out_channels), "in_channels and out_channels", "Conv2D", 1)
        self.in_channels, self.out_channels = channels
        self.kernel_size = pair(kernel_size, "kernel_size", "Conv2D", 1)
        self.stride = pair(stride, "stride", "Conv2D", 1)
        self.padding = pair(padding, "padding", "Conv2D", 0)
        self.dilation = pair(dilation, "dilation", "Conv2D", 1)
        checks.flag(bias, "Conv2D", "bias")
        shape = (self.out_channels, self.in_channels, *self.kernel_size)
        make = torch_default if init == "torch_default" else initializers.get(init, "Conv2D")
        self.weight = Parameter(
            initializers.parameter_array(make, shape, dtype, "Conv2D"), "weight"
        )
        self.bias = None
        if bias:
            start = (
                _torch_default_bias(shape, dtype)
                if init == "torch_default"
                else initializers.zeros((self.out_channels,), dtype=dtype)
            )
            self.bias = Parameter(start, "bias")
        self.regularizer = regularizers.check(regularizer, "Conv2D")
        self.input_grad = True
        self.workspace: dict[str, Any] = {}  # the kernels' scratch buffers

    def output_shape(self, x_shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        """The output shape for an input of shape ``x_shape``."""
        oh, ow = output_hw(x_shape[2:], self.kernel_size, self.stride, self.padding, self.dilation)
        return (x_shape[0], self.out_channels, oh, ow)

    def check_input(self, x: Any) -> None:
        """Raise ``ValueError`` unless ``x`` is an ``(N, in_channels, H, W)`` batch the
        kernel fits."""
        shape = tuple(x.shape)
        if len(shape) != 4 or shape[1] != self.in_channels:
            checks.shape(x, (self, "forward"), ("N", self.in_channels, "H", "W"))
        extent = tuple(self.dilation[a] * (self.kernel_size[a] - 1) + 1 for a in (0, 1))
        padded = tuple(shape[2 + a] + 2 * self.padding[a] for a in (0, 1))
        if extent[0] > padded[0] or extent[1] > padded[1]:
            raise ValueError(
                f"Conv2D.forward: kernel {self.kernel_size[0]}x{self.kernel_size[1]} (extent "
                f"{extent[0]}x{extent[1]} with dilation {self.dilation}) is larger than the "
                f"padded input {padded[0]}x{padded[1]}; got input shape {shape} with padding "
                f"{self.padding}"
            )

    def forward(self, x: Any) -> Any:
        x = self.checked_input(x, like=self.weight.data)
        self.check_input(x)
        bias = self.bias.data if self.bias is not None else None
        geometry = (self.stride, self.padding, self.dilation)
        y, self._cache = conv2d(x, self.weight.data, bias, *geometry, workspace=self.workspace)
        return self.remember_output(y)

    def backward(self, grad_out: Any) -> Any:
        grad_out = self.checked_gradient(grad_out)
        grad_in, weight_grad, bias_grad = conv2d_backward(
            grad_out, self._cache, self.weight.data, self.input_grad, self.workspace
        )
        self.accumulate(weight_grad, bias_grad)
        return grad_in

    def accumulate(self, weight_grad: Any, bias_grad: Any) -> None:
        """Add a backward pass's gradients (and the regularizer's) to the parameters."""
        if self.regularizer is not None:
            weight_grad = weight_grad + self.regularizer.gradient(self.weight.data)
        self.weight.accumulate(weight_grad)
        if self.bias is not None:
            self.bias.accumulate(bias_grad)

    def __repr__(self) -> str:
        extras = ""
        if self.stride != (1, 1):
            extras += f", stride={self.stride}"
        if self.padding != (0, 0):
            extras += f", padding={self.padding}"
        if self.dilation != (1, 1):
            extras += f", dilation={self.dilation}"
        if self.bias is None:
            extras += ", bias=False"
        return (
            f"Conv2D({self.in_channels}, {self.out_channels}, "
            f"kernel_size={self.kernel_size}{extras})"
        )


def _torch_default_bias(weight_shape: tuple[int, ...], dtype: Any) -> Any:
    fan_in, _ = initializers.fans(weight_shape)
    bound = 1.0 / math.sqrt(fan_in)
    return initializers.uniform((weight_shape[0],), low=-bound, high=bound, dtype=dtype)
