"""Output sizes of a window sweep (convolution, pooling), in plain Python.

Imported by gpunet's ops and layers for shapes and by the kernels, without loading Numba.
"""

from __future__ import annotations


def output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """Windows along one axis: ``(size + 2 padding - dilation (kernel - 1) - 1) // stride + 1``."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def output_hw(
    hw: tuple[int, int],
    kernel_size: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int] = (1, 1),
) -> tuple[int, int]:
    """``(OH, OW)`` of a window sweep over an input of height and width ``hw``."""
    return (
        output_size(hw[0], kernel_size[0], stride[0], padding[0], dilation[0]),
        output_size(hw[1], kernel_size[1], stride[1], padding[1], dilation[1]),
    )
