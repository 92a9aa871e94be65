"""Index arithmetic shared by the convolution and pooling kernels, on the CPU and on CUDA
(output sizes: ``_geometry``).

Written once as ``@njit(inline="always")`` functions, which both targets inline; their
integer width follows their arguments, so a CUDA kernel that passes 32-bit indices gets
32-bit arithmetic.
"""

from __future__ import annotations

import numba


@numba.njit(inline="always")
def unravel_nchw(index, c_count, h_count, w_count):
    """``(n, c, h, w)`` of flat position ``index`` in a C-ordered (N, C, H, W) array."""
    w = index % w_count
    rest = index // w_count
    h = rest % h_count
    rest = rest // h_count
    c = rest % c_count
    return rest // c_count, c, h, w


@numba.njit(inline="always")
def input_coord(out_index, tap, stride, pad, dilation):
    """The input coordinate that kernel tap ``tap`` of window ``out_index`` reads."""
    return out_index * stride - pad + tap * dilation


@numba.njit(inline="always")
def output_coord(in_index, tap, stride, pad, dilation, out_count):
    """The window whose tap ``tap`` reads input ``in_index``, or -1 if there is none."""
    shifted = in_index + pad - tap * dilation
    if shifted < 0:
        return -1
    out_index = shifted // stride
    if out_index * stride != shifted or out_index >= out_count:
        return -1
    return out_index
