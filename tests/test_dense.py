"""Dense, Sequential and the Layer contract."""

from __future__ import annotations

import numpy as np
import pytest

import gpunet
from gpunet.nn import Dense, ReLU, Sequential, Sigmoid, Tanh


def test_dense_forward_matches_numpy(rng):
    layer = Dense(3, 2).astype("float64")
    x = rng.standard_normal((4, 3))
    w, b = gpunet.to_numpy(layer.weight.data), gpunet.to_numpy(layer.bias.data)
    y = gpunet.to_numpy(layer(gpunet.asarray(x, dtype="float64")))
    np.testing.assert_allclose(y, x @ w + b, rtol=1e-12)


@pytest.mark.parametrize("bias", [True, False])
def test_dense_gradient_check(bias, rng):
    layer = Dense(5, 3, bias=bias).astype("float64")
    result = gpunet.gradcheck(layer, rng.standard_normal((4, 5)))
    assert result.max_error < 1e-8, str(result)
    assert result.checked == 4 * 5 + 5 * 3 + (3 if bias else 0)


def test_dense_accepts_extra_leading_axes(rng):
    layer = Dense(3, 2).astype("float64")
    result = gpunet.gradcheck(layer, rng.standard_normal((2, 4, 3)))
    assert result.max_error < 1e-8, str(result)


def test_dense_rejects_wrong_input_shape():
    layer = Dense(3, 2)
    with pytest.raises(
        ValueError,
        match=r"Dense.forward: expected input of shape \(N, \.\.\., 3\), got shape \(4, 5\)",
    ):
        layer(gpunet.asarray(np.zeros((4, 5))))
    with pytest.raises(
        ValueError,
        match=r"Dense.forward: expected input of shape \(N, \.\.\., 3\), got shape \(3,\)",
    ):
        layer(gpunet.asarray(np.zeros(3)))


def test_backward_adds_to_existing_gradients(rng):
    layer = Dense(2, 2).astype("float64")
    x = gpunet.asarray(rng.standard_normal((3, 2)), dtype="float64")
    grad = gpunet.asarray(np.ones((3, 2)), dtype="float64")
    layer(x)
    layer.backward(grad)
    once = gpunet.to_numpy(layer.weight.grad).copy()
    layer(x)
    layer.backward(grad)
    np.testing.assert_allclose(gpunet.to_numpy(layer.weight.grad), 2 * once)
    layer.zero_grad()
    assert layer.weight.grad is None


def test_sequential_gradient_check(rng):
    model = Sequential(Dense(3, 4), Tanh(), Dense(4, 4), ReLU(), Dense(4, 2), Sigmoid())
    result = gpunet.gradcheck(model.astype("float64"), rng.standard_normal((5, 3)))
    assert result.max_error < 1e-7, str(result)


def test_parameter_names_follow_pytorch():
    model = Sequential(Dense(2, 4), Tanh(), Dense(4, 1))
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert [p.shape for p in model.parameters()] == [(2, 4), (4,), (4, 1), (1,)]


def test_state_dict_round_trip_and_mismatch_message():
    gpunet.seed(1)
    source = Sequential(Dense(2, 4), Tanh(), Dense(4, 1))
    target = Sequential(Dense(2, 4), Tanh(), Dense(4, 1))
    target.load_state_dict({k: gpunet.to_numpy(v) for k, v in source.state_dict().items()})
    for (_, a), (_, b) in zip(
        source.state_dict().items(), target.state_dict().items(), strict=True
    ):
        np.testing.assert_array_equal(gpunet.to_numpy(a), gpunet.to_numpy(b))
    wrong = Sequential(Dense(2, 3), Tanh(), Dense(3, 1), Tanh(), Dense(1, 1))
    with pytest.raises(ValueError) as info:
        wrong.load_state_dict(source.state_dict())
    message = str(info.value)
    assert "missing '4.weight'" in message
    assert "'0.weight': expected shape (2, 3), got (2, 4)" in message
    assert "'2.weight': expected shape (3, 1), got (4, 1)" in message


def test_train_and_eval_reach_every_layer():
    model = Sequential(Dense(2, 2), Sequential(Tanh(), Dense(2, 1)))
    model.eval()
    assert all(not layer.training for _, layer in model.layers())
    model.train()
    assert all(layer.training for _, layer in model.layers())


def test_astype_moves_the_whole_model(xp):
    model = Sequential(Dense(2, 3), Tanh(), Dense(3, 1)).astype("float64")
    assert all(p.data.dtype == xp.float64 for p in model.parameters())
    model.astype("float32")
    assert all(p.data.dtype == xp.float32 for p in model.parameters())


def test_sequential_refuses_non_layers():
    with pytest.raises(TypeError, match="Sequential: argument 1 is int, not a Layer"):
        Sequential(Dense(1, 1), 3)


def _first_layer_grads(model, x, y_grad):
    for p in model.parameters():
        p.grad = None
    model(x)
    returned = model.backward(y_grad)
    return returned, [gpunet.to_numpy(p.grad) for p in model.parameters()]


def test_first_layer_without_input_gradient(rng):
    """input_grad=False on the first layer: same parameter gradients, None returned."""
    gpunet.seed(1)
    model = Sequential(Dense(6, 5), Tanh(), Dense(5, 3)).astype("float64")
    x = gpunet.asarray(rng.standard_normal((4, 6)), dtype="float64")
    y_grad = gpunet.asarray(rng.standard_normal((4, 3)), dtype="float64")
    full, expected = _first_layer_grads(model, x, y_grad)
    assert full.shape == (4, 6)
    model[0].input_grad = False
    skipped, actual = _first_layer_grads(model, x, y_grad)
    assert skipped is None
    for a, e in zip(actual, expected, strict=True):
        np.testing.assert_array_equal(a, e)


def test_only_the_first_layer_may_skip_its_input_gradient(rng):
    model = Sequential(Dense(6, 5), Tanh(), Dense(5, 3))
    model[2].input_grad = False
    model(gpunet.asarray(rng.standard_normal((4, 6)), dtype="float32"))
    with pytest.raises(ValueError) as error:
        model.backward(gpunet.asarray(rng.standard_normal((4, 3)), dtype="float32"))
    assert str(error.value) == (
        "Sequential: layer 2 (Dense(5, 3, bias=True)) returned no input gradient "
        "(input_grad=False), but the 2 layer(s) before it need one; only the first layer "
        "may skip it"
    )
