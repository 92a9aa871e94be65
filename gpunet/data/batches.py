"""Batching: the three modes of gradient descent from one function."""

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
        ``(x_batch, y_batch)``, or ``x_batch`` alone when ``y`` is None; each batch is
        moved to the device once.

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
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)  # the standard leaves out-of-bounds stops undefined
        index = slice(start, stop) if order is None else order[start:stop]
        xb = take_rows(x, index, dtype)
        if y is None:
            yield xb
        else:
            yield xb, take_rows(y, index, dtype)


def epoch_order(n: int, shuffle: bool = True, seed: int | None = None) -> np.ndarray:
    """The order of one epoch: a permutation of ``range(n)``, or ``range(n)`` itself."""
    if not shuffle:
        return np.arange(n)
    rng = backend.host_rng() if seed is None else np.random.default_rng(seed)
    return rng.permutation(n)


def take_rows(data: Any, index: np.ndarray | slice, dtype: Any = None) -> Any:
    """Rows ``index`` (an index array or a slice) of ``data`` on the current backend.

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
