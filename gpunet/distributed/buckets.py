"""Gradient buckets: many small arrays travel as a few large flat buffers.

One collective call costs a fixed latency (alpha, microseconds on a host, more across
nodes) plus the bytes over the bandwidth (beta per byte). Reducing each parameter on
its own pays alpha once per parameter; packing them into buffers of ``bucket_bytes``
pays it once per bucket while every byte still moves once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gpunet.backend import namespace

DEFAULT_BUCKET_BYTES = 25 * 2**20  # as PyTorch DDP: large enough to amortise latency


@dataclass(frozen=True)
class Bucket:
    """Which arrays one flat buffer holds.

    Attributes:
        indices: positions of the arrays in the list the plan was made from.
        shapes: their shapes, in buffer order.
        dtype: the dtype name shared by all of them.
        nbytes: the buffer's size in bytes.
    """

    indices: tuple[int, ...]
    shapes: tuple[tuple[int, ...], ...]
    dtype: str
    nbytes: int


def plan_buckets(
    layout: Sequence[tuple[tuple[int, ...], str]], bucket_bytes: int = DEFAULT_BUCKET_BYTES
) -> list[Bucket]:
    """Group arrays into buckets of one dtype and at most ``bucket_bytes`` each.

    The arrays are taken last first: backward produces the last layer's gradients
    first, so the first bucket is the first one complete. An array larger than
    ``bucket_bytes`` gets a bucket of its own.

    Args:
        layout: ``(shape, dtype name)`` of each array, in parameter order.
        bucket_bytes: the most bytes per bucket (default 25 MiB).

    Returns:
        The buckets, in the order they should be reduced.
    """
    if isinstance(bucket_bytes, bool) or not isinstance(bucket_bytes, int) or bucket_bytes < 1:
        raise ValueError(
            f"gpunet.distributed: bucket_bytes must be an int >= 1, got {bucket_bytes!r}"
        )
    open_buckets: dict[str, list[int]] = {}
    open_bytes: dict[str, int] = {}
    buckets: list[Bucket] = []

    def close(dtype: str) -> None:
        indices = open_buckets.pop(dtype)
        shapes = tuple(tuple(layout[i][0]) for i in indices)
        buckets.append(Bucket(tuple(indices), shapes, dtype, open_bytes.pop(dtype)))

    for index in reversed(range(len(layout))):
        shape, dtype = layout[index]
        nbytes = math.prod(shape) * _itemsize(dtype)
        if dtype in open_buckets and open_bytes[dtype] + nbytes > bucket_bytes:
            close(dtype)
        open_buckets.setdefault(dtype, []).append(index)
        open_bytes[dtype] = open_bytes.get(dtype, 0) + nbytes
    for dtype in list(open_buckets):
        close(dtype)
    return buckets


def pack(arrays: Sequence[Any]) -> Any:
    """One contiguous 1-D array holding ``arrays`` one after the other."""
    xp = namespace(*arrays)
    return xp.concat([xp.reshape(a, (-1,)) for a in arrays])


def unpack(flat: Any, shapes: Sequence[tuple[int, ...]]) -> list[Any]:
    """The arrays of ``shapes`` laid out one after the other in ``flat`` (views)."""
    xp = namespace(flat)
    arrays, offset = [], 0
    for shape in shapes:
        size = math.prod(shape)
        arrays.append(xp.reshape(flat[offset : offset + size], shape))
        offset += size
    return arrays


def _itemsize(dtype: str) -> int:
    digits = "".join(ch for ch in dtype if ch.isdigit())
    return int(digits) // 8 if digits else 1  # bool
