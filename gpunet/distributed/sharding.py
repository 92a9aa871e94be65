"""The sampler: each rank's share of an epoch's shuffled sample order."""

from __future__ import annotations

from typing import Any

import numpy as np

from gpunet.distributed import state, watchdog


def shard(order: Any, batch_size: int | None = None) -> np.ndarray:
    """This rank's share of one epoch's sample order.

    Rank 0's order is used on every rank (sent over MPI), so the ranks agree even when
    they were seeded differently. Rank ``r`` of ``W`` takes every W-th index starting
    at ``r``, after dropping the last ``len(order) % W`` so that all ranks run the same
    number of steps. Cutting that share into local batches of ``b`` then gives, at step
    k, the ranks' batches that together are exactly global batch k of ``W * b`` samples
    in the single-process order:

        shard_r[k*b : (k+1)*b] = order[k*W*b + r : (k+1)*W*b : W]

    Args:
        order: the epoch's order, a 1-D array of sample indices (e.g. a permutation).
        batch_size: the global batch size, checked to be divisible by the world size
            (default None: not checked). Use ``local_batch_size(batch_size)`` per rank.

    Returns:
        A 1-D NumPy array of ``len(order) // world_size()`` indices.

    Raises:
        RuntimeError: if ``init()`` has not run.
        ValueError: for an order that is not 1-D integers, or a batch size the world
            size does not divide.
    """
    group = state.current("shard")
    order = np.asarray(order)
    if order.ndim != 1 or (order.size and order.dtype.kind not in "iu"):
        raise ValueError(
            f"gpunet.distributed.shard: expected a 1-D array of sample indices, got "
            f"shape {order.shape} dtype {order.dtype}"
        )
    if batch_size is not None:
        local_batch_size(batch_size)
    if group.size == 1:
        return order
    order = watchdog.bcast(group.comm, order, 0, "the broadcast of the epoch's order")
    return shard_of(order, group.rank, group.size)


def shard_of(order: np.ndarray, rank: int, size: int) -> np.ndarray:
    """Rank ``rank``'s share of ``order`` among ``size`` ranks (see ``shard``)."""
    usable = (len(order) // size) * size
    return order[rank:usable:size]


def local_batch_size(batch_size: int) -> int:
    """The batch each rank runs so that the ranks together run ``batch_size``.

    Raises:
        RuntimeError: if ``init()`` has not run.
        ValueError: if the world size does not divide ``batch_size``.
    """
    size = state.current("local_batch_size").size
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, int | np.integer)
        or batch_size < 1
    ):
        raise ValueError(
            f"gpunet.distributed: the global batch size must be an int >= 1, got {batch_size!r}"
        )
    if batch_size % size:
        raise ValueError(
            f"gpunet.distributed: the global batch size {batch_size} is not divisible by the "
            f"world size {size}; use a multiple of {size}"
        )
    return int(batch_size) // size
