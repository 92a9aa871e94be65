"""Batching: the three modes of gradient descent from one function, and the batches of one
epoch on the device.

Data move to the device once per epoch, not once per batch: NumPy data on another
device (a GPU) are gathered in the epoch's order and copied in chunks of whole batches of
at most ``TRANSFER_BYTES`` (one copy per epoch for a data set up to that size), and the
batches are views of a chunk; data already on the device are gathered there, with the
epoch's order moved once. A chunk bounds the device memory the data take, without asking
the device how much it has; a copy of that size runs at the bus's full rate, so the
copies cost an epoch about what one pass over the data at that rate costs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from gpunet import backend, checks


def batches(
    x: Any,
    y: Any = None,
    batch_size: int | None = None,
    shuffle: bool = True,
    seed: int | None = None,
    dtype: Any = None,
) -> Iterator[Any]:
    """Split a data set into batches on the current backend, one pass (an epoch).

    ``batch_size`` picks the mode of gradient descent:

    * ``None``: batch gradient descent, the whole set in one batch per update;
    * ``1``: stochastic gradient descent, one random sample per update;
    * ``n``: mini-batch gradient descent, ``n`` samples per update (the last batch may be
      smaller).

    Args:
        x: inputs, first axis the samples (NumPy or any backend's array).
        y: targets with the same number of samples, or None.
        batch_size: None, 1 or n (default None).
        shuffle: visit the samples in a new random order each call (default True).
        seed: seed of the order (default None: gpunet's seeded host generator).
        dtype: dtype of floating data on the device (default None: float32, as
            ``gpunet.asarray``); integer labels keep their type.

    Yields:
        ``(x_batch, y_batch)``, or ``x_batch`` alone when ``y`` is None, on the device
        (see ``epoch_batches``).

    Raises:
        ValueError: for NaN or Inf in the data, lengths that differ, or a bad batch size.
        TypeError: for data that are not arrays of real numbers (lists, complex, bool).
    """
    n = _check_data(x, y)
    if batch_size is None:
        batch_size = n
    elif isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer):
        raise ValueError(f"batches: batch_size must be None or an int >= 1, got {batch_size!r}")
    elif batch_size < 1:
        raise ValueError(f"batches: batch_size must be None or an int >= 1, got {batch_size}")
    order = epoch_order(n, shuffle, seed) if shuffle else None
    arrays = (x,) if y is None else (x, y)
    for batch in epoch_batches(arrays, order, batch_size, dtype):
        yield batch[0] if y is None else batch


def epoch_order(n: int, shuffle: bool = True, seed: int | None = None) -> np.ndarray:
    """The order of one epoch: a permutation of ``range(n)``, or ``range(n)`` itself."""
    if not shuffle:
        return np.arange(n)
    rng = backend.host_rng() if seed is None else np.random.default_rng(seed)
    return rng.permutation(n)


def take_rows(data: Any, index: Any, dtype: Any = None) -> Any:
    """Rows ``index`` (an index array, on the host or the device, or a slice) of ``data``
    on the current backend.

    Floating data becomes ``dtype`` (default float32); integer data keeps its type.
    """
    if isinstance(index, slice) or isinstance(data, np.ndarray):
        rows = data[index, ...]  # the standard wants every axis named (no implicit tail)
    else:
        xp = backend.namespace(data)
        rows = xp.take(data, backend.asarray(index), axis=0)
    if dtype is not None and not _is_floating(rows):
        dtype = None
    return backend.asarray(rows, dtype=dtype)


# Host data move to the device in chunks of whole batches of at most this many bytes.
TRANSFER_BYTES = 256 * 2**20


def epoch_batches(
    arrays: tuple[Any, ...], order: np.ndarray | None, batch_size: int, dtype: Any = None
) -> Iterator[tuple[Any, ...]]:
    """The batches of one epoch on the current backend's device: a tuple of the rows of
    each array per batch.

    Args:
        arrays: arrays with the samples on axis 0 (NumPy or the backend's own).
        order: the epoch's order of the samples (a NumPy index array, possibly a part of
            them), or None for all of them as stored.
        batch_size: samples per batch (the last batch may be smaller).
        dtype: dtype of floating data on the device (default None: float32); integer
            data keep their type.
    """
    count = int(arrays[0].shape[0]) if order is None else len(order)
    sources = [_batch_source(data, order, batch_size, dtype) for data in arrays]
    for start in range(0, count, batch_size):
        stop = min(start + batch_size, count)
        yield tuple(source(start, stop) for source in sources)


def moves_to_device(data: Any) -> bool:
    """Whether ``data`` are NumPy data that the current backend keeps elsewhere."""
    return isinstance(data, np.ndarray) and backend.name() != "numpy"


def _batch_source(data: Any, order: np.ndarray | None, batch_size: int, dtype: Any) -> Any:
    """``rows(start, stop)``: the rows of positions ``start:stop`` of the epoch's order."""
    if not moves_to_device(data):
        if order is None:
            return lambda start, stop: take_rows(data, slice(start, stop), dtype)
        if not isinstance(data, np.ndarray):
            order = backend.asarray(order)  # once per epoch, not once per batch
        return lambda start, stop: take_rows(data, order[start:stop], dtype)
    row_bytes = max(1, data.nbytes // max(1, data.shape[0]))
    chunk = max(1, TRANSFER_BYTES // (row_bytes * batch_size)) * batch_size
    held = {"first": None, "rows": None}

    def rows(start: int, stop: int) -> Any:
        first = start - start % chunk
        if held["first"] != first:
            held["rows"] = None  # let the previous chunk go before the next one arrives
            last = first + chunk
            index = slice(first, last) if order is None else order[first:last]
            held["first"], held["rows"] = first, take_rows(data, index, dtype)
        return held["rows"][start - first : stop - first, ...]

    return rows


def _is_floating(data: Any) -> bool:
    if isinstance(data, np.ndarray):
        return data.dtype.kind == "f"
    return backend.namespace(data).isdtype(data.dtype, "real floating")


def _check_data(x: Any, y: Any) -> int:
    for label, data in (("x", x), ("y", y)):
        if data is not None:
            checks.real(data, "batches", label)
    n = _length(x, "x")
    if y is not None:
        n_y = _length(y, "y")
        if n_y != n:
            raise ValueError(f"batches: x has {n} samples but y has {n_y}")
    for label, data in (("x", x), ("y", y)):
        if data is None:
            continue
        host = backend.to_numpy(data) if not isinstance(data, np.ndarray) else data
        if host.dtype.kind in "fc" and not np.isfinite(host).all():
            bad = tuple(int(i) for i in np.argwhere(~np.isfinite(host))[0])
            raise ValueError(
                f"batches: {label} contains NaN or Inf (first at index {bad}, value {host[bad]})"
            )
    return n


def _length(data: Any, label: str) -> int:
    shape = getattr(data, "shape", None)
    if shape is None or len(shape) == 0:
        raise ValueError(f"batches: {label} must be an array with samples on axis 0, got {data!r}")
    return int(shape[0])
