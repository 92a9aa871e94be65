"""Index arithmetic shared by the convolution and pooling kernels, on the CPU and on CUDA.

Written once as ``@njit(inline="always")`` functions, which both targets inline. Output
sizes are in ``_geometry`` (plain Python); the CUDA kernels' index division, in 32 or
64 bits by array size, is ``_cuda.index_math``.
"""

from __future__ import annotations

import numba


@numba.njit(inline="always")
def input_coord(out_index, tap, stride, pad, dilation):
    """The input coordinate that kernel tap ``tap`` of window ``out_index`` reads."""
    return out_index * stride - pad + tap * dilation
