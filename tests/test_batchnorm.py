"""BatchNorm1D and BatchNorm2D: normalisation, running statistics, gradients, state."""

from __future__ import annotations

import numpy as np
import pytest

import gpunet
from gpunet.nn import BatchNorm1D, BatchNorm2D, Conv2D, Sequential


def _randomise(layer, rng):
    """Non-trivial affine parameters and running statistics, so every term is checked."""
    c = layer.num_features
    layer.weight.data = gpunet.asarray(rng.uniform(0.5, 2.0, c), dtype="float64")
    layer.bias.data = gpunet.asarray(rng.standard_normal(c), dtype="float64")
    layer.running_mean = gpunet.asarray(rng.standard_normal(c), dtype="float64")
    layer.running_var = gpunet.asarray(rng.uniform(0.5, 2.0, c), dtype="float64")
    return layer


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize(
    ("layer_type", "shape"),
    [(BatchNorm2D, (3, 5, 2, 3)), (BatchNorm1D, (6, 4)), (BatchNorm1D, (2, 3, 5))],
    ids=["2d", "1d", "1d-length"],
)
def test_batchnorm_gradient_check(layer_type, shape, training, rng):
    layer = _randomise(layer_type(shape[1]).astype("float64"), rng)
    layer.train(training)
    result = gpunet.gradcheck(layer, rng.standard_normal(shape) * 3 + 1)
    assert result.max_error < 1e-7, str(result)


def test_training_normalises_and_updates_running_statistics(rng):
    x = rng.standard_normal((8, 3, 4, 5)) * 2 + 5
    layer = BatchNorm2D(3, momentum=0.2).astype("float64")
    y = gpunet.to_numpy(layer(gpunet.asarray(x, dtype="float64")))
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1, rtol=1e-4)
    mean, unbiased = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3), ddof=1)
    np.testing.assert_allclose(gpunet.to_numpy(layer.running_mean), 0.2 * mean, rtol=1e-12)
    np.testing.assert_allclose(gpunet.to_numpy(layer.running_var), 0.8 + 0.2 * unbiased, rtol=1e-12)


def test_eval_uses_running_statistics(rng):
    layer = _randomise(BatchNorm1D(4).astype("float64"), rng).eval()
    x = rng.standard_normal((5, 4))
    y = gpunet.to_numpy(layer(gpunet.asarray(x, dtype="float64")))
    mean, var = gpunet.to_numpy(layer.running_mean), gpunet.to_numpy(layer.running_var)
    w, b = gpunet.to_numpy(layer.weight.data), gpunet.to_numpy(layer.bias.data)
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-5) * w + b, rtol=1e-12)
    np.testing.assert_allclose(gpunet.to_numpy(layer.running_mean), mean)  # unchanged


def test_state_dict_saves_buffers_and_loads_them(rng):
    model = Sequential(Conv2D(1, 2, 3), BatchNorm2D(2))
    model(gpunet.asarray(rng.standard_normal((4, 1, 5, 5))))
    state = {k: gpunet.to_numpy(v).copy() for k, v in model.state_dict().items()}
    assert set(state) == {
        "0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
    }  # fmt: skip
    assert np.abs(state["1.running_mean"]).max() > 0
    fresh = Sequential(Conv2D(1, 2, 3), BatchNorm2D(2))
    fresh.load_state_dict(state)
    np.testing.assert_array_equal(gpunet.to_numpy(fresh[1].running_var), state["1.running_var"])


def test_without_affine_has_no_parameters(rng):
    layer = BatchNorm1D(3, affine=False).astype("float64")
    assert layer.parameters() == []
    result = gpunet.gradcheck(layer, rng.standard_normal((4, 3)))
    assert result.max_error < 1e-7, str(result)


def test_batchnorm_rejects_bad_input():
    with pytest.raises(
        ValueError,
        match=r"BatchNorm2D.forward: expected input of shape \(N, 3, H, W\), got shape \(2, 3\)",
    ):
        BatchNorm2D(3)(gpunet.asarray(np.zeros((2, 3))))
    with pytest.raises(
        ValueError,
        match=r"BatchNorm1D.forward: expected input of shape \(N, 3\) or \(N, 3, L\), got shape \(2, 4\)",
    ):
        BatchNorm1D(3)(gpunet.asarray(np.zeros((2, 4))))
    with pytest.raises(
        ValueError, match=r"BatchNorm1D.forward: training needs more than one value"
    ):
        BatchNorm1D(3)(gpunet.asarray(np.zeros((1, 3))))
    with pytest.raises(
        ValueError, match=r"BatchNorm2D: momentum must be a finite number in \[0, 1\], got 2"
    ):
        BatchNorm2D(3, momentum=2)
    with pytest.raises(ValueError, match=r"BatchNorm2D: num_features must be >= 1, got 0"):
        BatchNorm2D(0)
