"""Batching for the three modes of gradient descent."""

from __future__ import annotations

import numpy as np
import pytest

import gpunet
from gpunet.data import batches


@pytest.fixture
def data(rng):
    return rng.standard_normal((10, 3)), np.arange(10)


@pytest.mark.parametrize(("batch_size", "sizes"), [(None, [10]), (1, [1] * 10), (4, [4, 4, 2])])
def test_modes_cover_every_sample_once(data, batch_size, sizes):
    x, y = data
    got = list(batches(x, y, batch_size=batch_size))
    assert [len(gpunet.to_numpy(yb)) for _, yb in got] == sizes
    labels = np.concatenate([gpunet.to_numpy(yb) for _, yb in got])
    assert sorted(labels.tolist()) == list(range(10))
    for xb, yb in got:  # rows stay paired with their labels
        np.testing.assert_allclose(gpunet.to_numpy(xb), x[gpunet.to_numpy(yb)].astype(np.float32))


def test_batches_are_on_the_backend_as_float32(data, xp):
    xb, yb = next(batches(*data, batch_size=4))
    assert xb.dtype == xp.float32
    assert xp.isdtype(yb.dtype, "integral")
    xb64, _ = next(batches(*data, batch_size=4, dtype="float64"))
    assert xb64.dtype == xp.float64


def test_seed_fixes_the_order_and_shuffle_false_keeps_it(data):
    first = [gpunet.to_numpy(yb) for _, yb in batches(*data, batch_size=3, seed=5)]
    second = [gpunet.to_numpy(yb) for _, yb in batches(*data, batch_size=3, seed=5)]
    np.testing.assert_array_equal(np.concatenate(first), np.concatenate(second))
    ordered = [gpunet.to_numpy(yb) for _, yb in batches(*data, batch_size=3, shuffle=False)]
    np.testing.assert_array_equal(np.concatenate(ordered), np.arange(10))


def test_device_arrays_are_batched_too(data):
    x, y = gpunet.asarray(data[0]), gpunet.asarray(data[1])
    got = list(batches(x, y, batch_size=5, seed=1))
    assert sum(int(xb.shape[0]) for xb, _ in got) == 10


def test_nan_or_inf_is_refused(data):
    x, y = data
    x = x.copy()
    x[3, 1] = np.nan
    with pytest.raises(
        ValueError, match=r"batches: x contains NaN or Inf \(first at index \(3, 1\), value nan\)"
    ):
        next(batches(x, y))
    x[3, 1] = np.inf
    with pytest.raises(ValueError, match="x contains NaN or Inf"):
        next(batches(gpunet.asarray(x), y))


def test_lengths_and_batch_size_are_checked(data):
    x, y = data
    with pytest.raises(ValueError, match="batches: x has 10 samples but y has 9"):
        next(batches(x, y[:9]))
    with pytest.raises(ValueError, match="batch_size must be None or an int >= 1, got 0"):
        next(batches(x, y, batch_size=0))
    with pytest.raises(ValueError, match="batch_size must be None or an int >= 1, got 2.5"):
        next(batches(x, y, batch_size=2.5))


def test_unshuffled_device_arrays_are_sliced(data):
    x = gpunet.asarray(data[0])
    got = [gpunet.to_numpy(xb) for xb in batches(x, batch_size=4, shuffle=False)]
    np.testing.assert_allclose(np.concatenate(got), data[0].astype(np.float32))
