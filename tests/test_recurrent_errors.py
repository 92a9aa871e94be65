"""RNN, LSTM, GRU and Bidirectional: bad input gets a clear error before any kernel runs."""

from __future__ import annotations

import numpy as np
import pytest

from gpunet import backend
from gpunet.nn import GRU, LSTM, RNN, Bidirectional, Dense
from tests.test_recurrent import data, make


@pytest.fixture(params=["kernels", "reference"])
def either_path(request, monkeypatch):
    """Run the test on the kernel path and on the reference path (GPUNET_KERNELS=0)."""
    if request.param == "reference":
        monkeypatch.setenv("GPUNET_KERNELS", "0")
    ops = []
    original = backend.kernel

    def watched(op, xp):
        ops.append(op)
        return original(op, xp)

    monkeypatch.setattr(backend, "kernel", watched)
    return ops


def _sequence_ops(ops):
    return [op for op in ops if "_sequence_" in op]


@pytest.mark.parametrize(
    "shape, message",
    [
        ((4, 3), r"LSTM.forward: expected input of shape \(N, T, 3\), got shape \(4, 3\)"),
        ((2, 5, 4), r"LSTM.forward: expected input of shape \(N, T, 3\), got shape \(2, 5, 4\)"),
        (
            (2, 0, 3),
            r"LSTM.forward: input is an empty sequence \(shape \(2, 0, 3\)\); expected at least one time step",
        ),
        (
            (0, 5, 3),
            r"LSTM.forward: input is an empty batch \(shape \(0, 5, 3\)\); expected at least one sample",
        ),
    ],
    ids=["two_dimensional", "features", "no_steps", "no_rows"],
)
def test_bad_input_shapes_are_errors(shape, message, rng, either_path):
    with pytest.raises(ValueError, match=message):
        make("lstm")(data(rng, *shape))
    assert _sequence_ops(either_path) == []


def test_initial_states_of_the_wrong_shape_are_errors(rng, either_path):
    with pytest.raises(
        ValueError, match=r"RNN.forward: expected h0 of shape \(2, 5\), got shape \(2, 4\)"
    ):
        make("rnn_tanh")(data(rng, 2, 5, 3), data(rng, 2, 4))
    with pytest.raises(
        ValueError, match=r"LSTM.forward: expected c0 of shape \(2, 5\), got shape \(5,\)"
    ):
        make("lstm")(data(rng, 2, 5, 3), data(rng, 2, 5), data(rng, 5))
    with pytest.raises(
        ValueError, match=r"GRU.forward: expected h0 of shape \(4, 5\), got shape \(3, 5\)"
    ):
        make("gru")(data(rng, 4, 2, 3), data(rng, 3, 5))
    assert _sequence_ops(either_path) == []


def test_initial_states_of_the_wrong_dtype_are_errors(rng, either_path):
    layer = make("lstm")
    complex_h0 = backend.asarray(np.ones((2, 5), dtype=np.complex128))
    with pytest.raises(
        TypeError, match=r"LSTM.forward: h0 has dtype complex128; expected real numbers"
    ):
        layer(data(rng, 2, 4, 3), complex_h0)
    with pytest.raises(TypeError, match=r"LSTM.forward: expected an array for c0, got list"):
        layer(data(rng, 2, 4, 3), None, [[0.0] * 5] * 2)
    with pytest.raises(
        TypeError, match=r"LSTM.forward: input has dtype bool; expected real numbers"
    ):
        layer(backend.asarray(np.ones((2, 4, 3), dtype=bool)))
    assert _sequence_ops(either_path) == []


def test_integer_and_other_float_inputs_are_cast_to_the_layer_dtype(rng):
    layer = make("gru")  # float64
    x = rng.standard_normal((2, 4, 3))
    h0 = np.ones((2, 5), dtype=np.int32)
    expected = backend.to_numpy(layer(backend.asarray(x), backend.asarray(h0, dtype="float64")))
    got = layer(backend.asarray(x.astype(np.float32)), backend.asarray(h0))
    assert got.dtype == layer.weight_ih.data.dtype
    np.testing.assert_allclose(backend.to_numpy(got), expected, rtol=1e-6)


@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "sequences"])
def test_gradients_of_the_wrong_shape_are_errors(return_sequences, rng, either_path):
    layer = make("lstm", return_sequences=return_sequences, return_state=True)
    layer(data(rng, 2, 5, 3))
    before = _sequence_ops(either_path)
    if return_sequences:  # a gradient of the wrong length through time
        wrong, expected = data(rng, 2, 6, 5), r"\(2, 5, 5\), got shape \(2, 6, 5\)"
    else:
        wrong, expected = data(rng, 3, 5), r"\(2, 5\), got shape \(3, 5\)"
    with pytest.raises(
        ValueError, match=r"LSTM.backward: expected the gradient of output of shape " + expected
    ):
        layer.backward((wrong, None, None))
    with pytest.raises(
        ValueError,
        match=r"LSTM.backward: expected the gradient of c_T of shape \(2, 5\), got shape \(2, 4\)",
    ):
        layer.backward((None, None, data(rng, 2, 4)))
    with pytest.raises(
        ValueError, match=r"LSTM.backward: expected up to 3 gradients \(output, h_T, c_T\), got 4"
    ):
        layer.backward((None, None, None, None))
    with pytest.raises(
        TypeError, match=r"LSTM.backward: expected an array for the gradient of output, got str"
    ):
        layer.backward("gradient")
    assert _sequence_ops(either_path) == before


def test_backward_before_forward_is_an_error(either_path):
    with pytest.raises(RuntimeError, match=r"GRU.backward: called before forward"):
        make("gru").backward(backend.asarray(np.ones((2, 5))))
    with pytest.raises(RuntimeError, match=r"Bidirectional.backward: called before forward"):
        Bidirectional(make("gru")).backward(backend.asarray(np.ones((2, 10))))
    assert _sequence_ops(either_path) == []


def test_bidirectional_checks_its_input_and_gradient(rng, either_path):
    layer = Bidirectional(make("gru", return_sequences=True))
    with pytest.raises(
        ValueError,
        match=r"Bidirectional.forward: expected input of shape \(N, T, 3\), got shape \(2, 4\)",
    ):
        layer(data(rng, 2, 4))
    layer(data(rng, 2, 4, 3))
    with pytest.raises(
        ValueError,
        match=r"Bidirectional.backward: expected a gradient of shape \(2, 4, 10\), got shape \(2, 3, 10\)",
    ):
        layer.backward(data(rng, 2, 3, 10))


def test_stateful_batch_change_is_an_error(rng):
    layer = make("gru", stateful=True)
    layer(data(rng, 2, 3, 3))
    with pytest.raises(
        ValueError,
        match=r"GRU.forward: stateful layer carries state for batch 2 but got batch 4; call reset_state\(\) first",
    ):
        layer(data(rng, 4, 3, 3))
    layer.reset_state()
    assert tuple(layer(data(rng, 4, 3, 3)).shape) == (4, 5)


def test_unknown_nonlinearity_is_an_error():
    with pytest.raises(
        ValueError, match=r"RNN: unknown nonlinearity 'sigmoid'; expected 'tanh' or 'relu'"
    ):
        RNN(3, 4, nonlinearity="sigmoid")


def test_bad_sizes_and_wrapped_layers_are_errors():
    with pytest.raises(
        ValueError, match=r"LSTM: input_size and hidden_size must be >= 1, got 0 and 4"
    ):
        LSTM(0, 4)
    with pytest.raises(
        TypeError, match=r"Bidirectional: expected an RNN, LSTM or GRU layer, got Dense"
    ):
        Bidirectional(Dense(3, 4))
    with pytest.raises(
        ValueError, match=r"Bidirectional: the wrapped layer must have return_state=False"
    ):
        Bidirectional(GRU(3, 4, return_state=True))
