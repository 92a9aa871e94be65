"""A convolution block in one pass over its output: Conv2D -> ReLU, or Conv2D -> ReLU ->
2x2 max-pool (stride 2), on the CPU.

The convolution's GEMM leaves each block of images as an ``(images*P, O)`` product in
cache; instead of writing it out as the convolution's output, and reading and writing it
again for the ReLU and the pooling, the epilogue here adds the bias, applies the ReLU and,
with pooling, keeps only each window's maximum and its tap. Backward builds the
convolution's output gradient for the GEMMs straight from the block's gradient: the
pooled gradient goes to the window's winning tap where the pooled value is positive
(where the ReLU let it through), zeros elsewhere. The ReLU output and the unpooled
activation are never stored.

The numbers are those of the three layers run one after the other: relu(max(z)) equals
max(relu(z)); a NaN wins its window; the tap may differ from the separate layers' only
where every value of the window is at most 0, where the gradient is 0 either way.

``conv2d_relu_forward_cpu`` / ``conv2d_relu_backward_cpu`` (kernel ops of the same
names, see ``gpunet.ops.conv_block``) take NumPy arrays.
"""

from __future__ import annotations

import numpy as np

from ._geometry import output_hw
from ._jit import cpu_kernel
from .conv import backward_blocks, forward_blocks
from .pool import _max4


@cpu_kernel
def _relu_output(product, bias, out):
    # out (images, O, P) = relu(product + bias), product (images*P, O)
    block, o_count, plane = out.shape
    for b in range(block):
        for o in range(o_count):
            shift = bias[o]
            for p in range(plane):
                value = product[b * plane + p, o] + shift
                out[b, o, p] = 0 if value < 0 else value


@cpu_kernel
def _relu_pool_output(product, bias, out, taps, ow_count, save):
    # out (images, O, OH/2, OW/2): max over each 2x2 window of relu(product + bias); taps
    # the winning tap (0..3, row-major), written when ``save``
    block, o_count, ph_count, pw_count = out.shape
    plane = 4 * ph_count * pw_count
    for b in range(block):
        base = b * plane
        for ph in range(ph_count):
            top = base + 2 * ph * ow_count
            for pw in range(pw_count):
                r0 = top + 2 * pw
                r1 = r0 + ow_count
                for o in range(o_count):
                    shift = bias[o]
                    best, tap = _max4(
                        product[r0, o] + shift,
                        product[r0 + 1, o] + shift,
                        product[r1, o] + shift,
                        product[r1 + 1, o] + shift,
                    )
                    out[b, o, ph, pw] = 0 if best < 0 else best
                    if save:
                        taps[b, o, ph, pw] = tap


@cpu_kernel
def _relu_grad(grad, y, out, bias_grad):
    # as conv's _grad_block, the gradient let through where the ReLU output is positive
    block, o_count, plane = grad.shape
    for o in range(o_count):
        total = 0.0  # float64 accumulator: a float32 sum over N*P terms would drift
        for b in range(block):
            for p in range(plane):
                value = grad[b, o, p] if y[b, o, p] > 0 else 0
                out[o, b * plane + p] = value
                total += value
        bias_grad[o] += total


@cpu_kernel
def _relu_pool_grad(grad, pooled, taps, out, bias_grad, ow_count):
    # out (O, images*P): each window's gradient at its tap where the pooled value is
    # positive, zeros elsewhere
    block, o_count, ph_count, pw_count = grad.shape
    plane = 4 * ph_count * pw_count
    for o in range(o_count):
        total = 0.0
        for b in range(block):
            base = b * plane
            for column in range(base, base + plane):
                out[o, column] = 0
            for ph in range(ph_count):
                for pw in range(pw_count):
                    tap = taps[b, o, ph, pw]
                    if pooled[b, o, ph, pw] > 0:
                        value = grad[b, o, ph, pw]
                        row = base + (2 * ph + (tap >> 1)) * ow_count + 2 * pw + (tap & 1)
                        out[o, row] = value
                        total += value
        bias_grad[o] += total


def conv2d_relu_forward_cpu(
    x, weight, bias, stride, padding, dilation, pool=False, save=True, workspace=None
):
    """``relu(conv2d(x))``, or its 2x2 max-pool with ``pool``: ``(y, saved)``.

    ``saved`` is what ``conv2d_relu_backward_cpu`` needs (None unless ``save``): the
    padded input, and the output with (when pooled) the winning taps, int8.
    """
    n, o = x.shape[0], weight.shape[0]
    oh, ow = output_hw(x.shape[2:], weight.shape[2:], stride, padding, dilation)
    dtype = np.result_type(x, weight)
    bias = np.zeros(o, dtype=dtype) if bias is None else bias.astype(dtype, copy=False)
    if pool:
        y = np.empty((n, o, oh // 2, ow // 2), dtype=dtype)
        taps = np.empty(y.shape if save else (1, 1, 1, 1), dtype=np.int8)

        def epilogue(product, span):
            _relu_pool_output(product, bias, y[span], taps[span] if save else taps, ow, save)

    else:
        y, taps = np.empty((n, o, oh * ow), dtype=dtype), None

        def epilogue(product, span):
            _relu_output(product, bias, y[span])

    padded = forward_blocks(x, weight, stride, padding, dilation, workspace, epilogue)
    y = y.reshape(n, o, oh, ow) if not pool else y
    return y, ((padded, y, taps) if save else None)


def conv2d_relu_backward_cpu(
    grad, saved, weight, x_shape, stride, padding, dilation, input_grad=True, workspace=None
):
    """Gradients ``(d x or None, d weight, d bias)`` of ``conv2d_relu_forward_cpu``."""
    padded, y, taps = saved
    n, o = grad.shape[0], grad.shape[1]
    oh, ow = output_hw(x_shape[2:], weight.shape[2:], stride, padding, dilation)
    dtype = np.result_type(weight, padded)
    grad = np.ascontiguousarray(grad, dtype=dtype)
    if taps is not None:

        def fill_grad(span, g, bias_grad):
            _relu_pool_grad(grad[span], y[span], taps[span], g, bias_grad, ow)

    else:
        grad3, y3 = grad.reshape(n, o, oh * ow), y.reshape(n, o, oh * ow)

        def fill_grad(span, g, bias_grad):
            _relu_grad(grad3[span], y3[span], g, bias_grad)

    return backward_blocks(
        padded, weight, x_shape, (oh, ow), stride, padding, dilation, input_grad, workspace,
        fill_grad,
    )  # fmt: skip
