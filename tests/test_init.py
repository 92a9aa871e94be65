"""Initialisers: fans, variances, orthogonality, determinism, layers' init=."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest

import gpunet
from gpunet import init
from gpunet.nn import Dense


def host(array):
    return gpunet.to_numpy(array).astype(np.float64)


@pytest.mark.parametrize(
    ("shape", "expected"),
    [((20, 30), (20, 30)), ((8, 3, 5, 5), (75, 200)), ((7,), (7, 7))],
)
def test_fans_of_dense_conv_and_vector(shape, expected):
    assert init.fans(shape) == expected


@pytest.mark.parametrize(
    ("name", "options", "std"),
    [
        ("xavier_uniform", {}, math.sqrt(2 / (400 + 300))),
        ("xavier_normal", {}, math.sqrt(2 / (400 + 300))),
        ("kaiming_uniform", {}, math.sqrt(2 / 400)),
        ("kaiming_normal", {}, math.sqrt(2 / 400)),
        ("kaiming_normal", {"mode": "fan_out"}, math.sqrt(2 / 300)),
        ("kaiming_normal", {"nonlinearity": "tanh"}, (5 / 3) / math.sqrt(400)),
        ("kaiming_uniform", {"nonlinearity": "leaky_relu", "a": 0.2},
         math.sqrt(2 / (1 + 0.04)) / math.sqrt(400)),
        ("normal", {"std": 0.05}, 0.05),
        ("uniform", {"low": -1, "high": 1}, 1 / math.sqrt(3)),
    ],
)  # fmt: skip
def test_standard_deviation_matches_the_formula(name, options, std):
    values = host(getattr(init, name)((400, 300), **options))
    assert values.std() == pytest.approx(std, rel=0.02)
    assert abs(values.mean()) < 4 * std / math.sqrt(values.size)


def test_conv_weight_uses_receptive_field_in_fans():
    values = host(init.kaiming_normal((64, 16, 3, 3)))
    assert values.std() == pytest.approx(math.sqrt(2 / (16 * 9)), rel=0.03)


def test_uniform_bounds():
    values = host(init.xavier_uniform((50, 70), gain=2.0))
    bound = 2.0 * math.sqrt(6 / 120)
    assert values.max() <= bound and values.min() >= -bound and values.max() > 0.95 * bound


@pytest.mark.parametrize("shape", [(6, 4), (4, 6), (5, 2, 3)])
def test_orthogonal_rows_or_columns_are_orthonormal(shape):
    flat = host(init.orthogonal(shape, gain=1.5)).reshape(shape[0], -1)
    gram = flat @ flat.T if flat.shape[0] <= flat.shape[1] else flat.T @ flat
    np.testing.assert_allclose(gram, 2.25 * np.eye(gram.shape[0]), atol=1e-5)


def test_per_gate_blocks_each_have_their_own_fans():
    weight = host(init.per_gate("orthogonal", (8, 32), gates=4, dtype="float64"))
    for block in np.split(weight, 4, axis=1):
        np.testing.assert_allclose(block.T @ block, np.eye(8), atol=1e-12)
    uniform = host(init.per_gate("xavier_uniform", (100, 400), gates=4))
    assert np.abs(uniform).max() <= math.sqrt(6 / 200) and np.abs(uniform).max() > math.sqrt(
        6 / 500
    )


def test_constants():
    assert host(init.zeros((2, 3))).sum() == 0
    assert (host(init.ones((2, 3))) == 1).all()
    assert (host(init.constant((4,), value=0.5)) == 0.5).all()


def test_same_seed_same_values_and_dtype():
    gpunet.seed(3)
    a = host(init.kaiming_uniform((5, 4), dtype="float64"))
    gpunet.seed(3)
    b = init.kaiming_uniform((5, 4), dtype="float64")
    np.testing.assert_array_equal(a, host(b))
    assert b.dtype == gpunet.asarray([0.0], dtype="float64").dtype
    assert init.normal((2,)).dtype == gpunet.asarray([0.0]).dtype  # float32 default


def test_dense_takes_a_name_or_a_function():
    gpunet.seed(1)
    by_name = host(Dense(30, 20, init="he_normal").weight.data)
    gpunet.seed(1)
    by_function = host(Dense(30, 20, init=init.kaiming_normal).weight.data)
    np.testing.assert_array_equal(by_name, by_function)
    small = host(Dense(30, 20, init=functools.partial(init.normal, std=1e-3)).weight.data)
    assert small.std() == pytest.approx(1e-3, rel=0.15)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: Dense(3, 2, init="glorot"), r"Dense: unknown initialiser 'glorot'; available: "),
        (lambda: init.kaiming_normal((3, 2), mode="fan"), r"kaiming: mode must be 'fan_in' or"),
        (lambda: init.calculate_gain("swish"), r"calculate_gain: unknown nonlinearity 'swish'"),
        (lambda: init.orthogonal((5,)), r"orthogonal: needs at least 2 dimensions, got shape"),
        (lambda: init.normal((2, 2), std=-1.0), r"normal: std must be >= 0, got -1\.0"),
        (lambda: init.uniform((2,), low=1, high=0), r"uniform: expected low <= high, got low=1"),
        (lambda: init.normal((2, -1)), r"normal: shape must be a tuple of ints >= 0, got \(2, -1\)"),
        (lambda: init.per_gate("orthogonal", (4, 10), gates=4),
         r"per_gate: expected shape \(rows, gates \* hidden\) with 4 gates, got \(4, 10\)"),
    ],
)  # fmt: skip
def test_bad_arguments_raise(call, message):
    with pytest.raises(ValueError, match=message):
        call()
