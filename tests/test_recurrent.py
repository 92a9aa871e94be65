"""RNN, LSTM, GRU and Bidirectional: gradients through time, states, errors."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

import gpunet
from gpunet import backend
from gpunet.nn import GRU, LSTM, RNN, Bidirectional, Dense, Sequential

CELLS = {
    "rnn_tanh": lambda f, h, **kw: RNN(f, h, **kw),
    "rnn_relu": lambda f, h, **kw: RNN(f, h, nonlinearity="relu", **kw),
    "lstm": lambda f, h, **kw: LSTM(f, h, **kw),
    "gru": lambda f, h, **kw: GRU(f, h, **kw),
}


def make(cell: str, features: int = 3, hidden: int = 5, **kwargs):
    return CELLS[cell](features, hidden, **kwargs).astype("float64")


def data(rng, *shape):
    return backend.asarray(rng.standard_normal(shape), dtype="float64")


# --------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "sequences"])
@pytest.mark.parametrize("cell", list(CELLS))
def test_gradcheck_through_time(cell, return_sequences, rng):
    layer = make(cell, features=2, hidden=3, return_sequences=return_sequences)
    result = gpunet.gradcheck(layer, data(rng, 2, 7, 2))
    assert result.max_error < 1e-7, str(result)


@pytest.mark.parametrize("cell", ["rnn_tanh", "gru"])
def test_gradcheck_without_bias(cell, rng):
    layer = make(cell, features=2, hidden=3, bias=False)
    assert [name for name, _ in layer.named_parameters()] == ["weight_ih", "weight_hh"]
    assert gpunet.gradcheck(layer, data(rng, 3, 4, 2)).max_error < 1e-7


def _numeric_gradient(objective, value):
    """Central differences of a scalar objective with respect to a NumPy array."""
    grad = np.zeros_like(value)
    for index in np.ndindex(*value.shape):
        saved = value[index]
        value[index] = saved + 1e-6
        up = objective(value)
        value[index] = saved - 1e-6
        down = objective(value)
        value[index] = saved
        grad[index] = (up - down) / 2e-6
    return grad


@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "sequences"])
@pytest.mark.parametrize("cell", list(CELLS))
def test_initial_and_final_states_gradients(cell, return_sequences, rng):
    """L = <out, R> + <h_T, S> (+ <c_T, U>): the gradients of x, h0 (and c0) are exact."""
    n_batch, steps, features, hidden = 2, 5, 3, 4
    layer = make(cell, features, hidden, return_sequences=return_sequences, return_state=True)
    lstm = cell == "lstm"
    x = rng.standard_normal((n_batch, steps, features))
    states = [rng.standard_normal((n_batch, hidden)) for _ in range(2 if lstm else 1)]
    out_shape = (n_batch, steps, hidden) if return_sequences else (n_batch, hidden)
    weights = [rng.standard_normal(out_shape)]
    weights += [rng.standard_normal((n_batch, hidden)) for _ in states]

    def run(x_value, state_values):
        inputs = [backend.asarray(v, dtype="float64") for v in (x_value, *state_values)]
        return layer(*inputs)

    def objective(x_value, state_values):
        outputs = run(x_value, state_values)
        return sum(
            float(np.sum(backend.to_numpy(o) * w)) for o, w in zip(outputs, weights, strict=True)
        )

    run(x, states)
    grads = tuple(backend.asarray(w, dtype="float64") for w in weights)
    grad_x = backend.to_numpy(layer.backward(grads))
    analytic = [backend.to_numpy(layer.grad_h0)]
    if lstm:
        analytic.append(backend.to_numpy(layer.grad_c0))
    else:
        assert layer.grad_c0 is None

    expected_x = _numeric_gradient(lambda v: objective(v, states), x.copy())
    np.testing.assert_allclose(grad_x, expected_x, atol=1e-7)
    for k, state in enumerate(states):

        def state_objective(v, k=k):
            values = list(states)
            values[k] = v
            return objective(x, values)

        expected = _numeric_gradient(state_objective, state.copy())
        np.testing.assert_allclose(analytic[k], expected, atol=1e-7)


def test_no_initial_state_means_zeros_and_no_state_gradient(rng):
    layer = make("lstm")
    x = data(rng, 2, 4, 3)
    zeros = backend.asarray(np.zeros((2, 5)), dtype="float64")
    plain = backend.to_numpy(layer(x))
    layer.backward(backend.asarray(np.ones((2, 5)), dtype="float64"))
    assert layer.grad_h0 is None and layer.grad_c0 is None
    np.testing.assert_allclose(backend.to_numpy(layer(x, zeros, zeros)), plain, atol=1e-15)


@pytest.mark.parametrize("merge_sequences", [False, True], ids=["last", "sequences"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_bidirectional_gradcheck(cell, merge_sequences, rng):
    layer = Bidirectional(make(cell, 2, 2, return_sequences=merge_sequences))
    result = gpunet.gradcheck(layer, data(rng, 2, 4, 2))
    assert result.max_error < 1e-7, str(result)


def test_bidirectional_matches_two_layers_run_by_hand(rng, xp):
    wrapper = Bidirectional(make("gru", 3, 4, return_sequences=True))
    x = data(rng, 2, 6, 3)
    out = backend.to_numpy(wrapper(x))
    assert out.shape == (2, 6, 8)
    ahead = backend.to_numpy(wrapper.forward_layer(x))
    behind = backend.to_numpy(wrapper.backward_layer(xp.flip(x, axis=1)))[:, ::-1]
    np.testing.assert_allclose(out, np.concatenate([ahead, behind], axis=-1), atol=1e-14)
    names = [name for name, _ in wrapper.named_parameters()]
    assert names[0] == "forward_layer.weight_ih" and names[4] == "backward_layer.weight_ih"
    assert not np.allclose(  # the two directions start from different weights
        backend.to_numpy(wrapper.forward_layer.weight_hh.data),
        backend.to_numpy(wrapper.backward_layer.weight_hh.data),
    )


def test_stacked_layers_in_sequential_gradcheck(rng):
    model = Sequential(LSTM(2, 3, return_sequences=True), GRU(3, 2), Dense(2, 2))
    result = gpunet.gradcheck(model.astype("float64"), data(rng, 2, 4, 2))
    assert result.max_error < 1e-7, str(result)


# --------------------------------------------------------------------------- stateful


@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm", "gru"])
def test_stateful_chunks_continue_the_sequence(cell, rng):
    stateful = make(cell, return_sequences=True, stateful=True)
    whole = make(cell, return_sequences=True)
    whole.load_state_dict(stateful.state_dict())
    x = rng.standard_normal((2, 7, 3))
    full = backend.to_numpy(whole(backend.asarray(x, dtype="float64")))
    first = backend.to_numpy(stateful(backend.asarray(x[:, :4], dtype="float64")))
    second = backend.to_numpy(stateful(backend.asarray(x[:, 4:], dtype="float64")))
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), full, atol=1e-13)
    stateful.reset_state()
    again = backend.to_numpy(stateful(backend.asarray(x[:, :4], dtype="float64")))
    np.testing.assert_allclose(again, first, atol=1e-15)


@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm", "gru"])
def test_stateful_gradient_is_cut_at_the_chunk_boundary(cell, rng):
    """Truncated BPTT: the second chunk's gradient equals that of a layer started from the
    carried state, which is exactly the full gradient restricted to the second chunk."""
    stateful = make(cell, stateful=True)
    whole = make(cell)
    whole.load_state_dict(stateful.state_dict())
    x = rng.standard_normal((2, 7, 3))
    grad_out = backend.asarray(rng.standard_normal((2, 5)), dtype="float64")
    stateful(backend.asarray(x[:, :3], dtype="float64"))
    stateful(backend.asarray(x[:, 3:], dtype="float64"))
    stateful.zero_grad()
    grad_chunk = backend.to_numpy(stateful.backward(grad_out))
    assert stateful.grad_h0 is not None  # the carried state counts as an initial state
    whole(backend.asarray(x, dtype="float64"))
    grad_full = backend.to_numpy(whole.backward(grad_out))
    np.testing.assert_allclose(grad_chunk, grad_full[:, 3:], atol=1e-13)
    assert np.abs(grad_full[:, :3]).max() > 1e-6  # what the cut drops is not nothing


# --------------------------------------------------------------------------- shapes, init


@pytest.mark.parametrize("cell, gates", [("rnn_tanh", 1), ("lstm", 4), ("gru", 3)])
def test_parameter_layout_and_default_init(cell, gates):
    layer = CELLS[cell](7, 6)
    shapes = {name: p.shape for name, p in layer.named_parameters()}
    assert shapes == {
        "weight_ih": (7, gates * 6),
        "weight_hh": (6, gates * 6),
        "bias_ih": (gates * 6,),
        "bias_hh": (gates * 6,),
    }
    bound = 1 / math.sqrt(6)
    for p in layer.parameters():
        values = backend.to_numpy(p.data)
        assert values.dtype == np.float32
        assert np.abs(values).max() <= bound and np.abs(values).max() > 0.8 * bound


def test_per_gate_initialisers():
    layer = LSTM(3, 4, init="xavier_uniform", recurrent_init="orthogonal")
    weight_hh = backend.to_numpy(layer.weight_hh.data).astype(np.float64)
    for k in range(4):
        block = weight_hh[:, 4 * k : 4 * (k + 1)]
        np.testing.assert_allclose(block.T @ block, np.eye(4), atol=1e-5)
    assert np.all(backend.to_numpy(layer.bias_ih.data) == 0)
    bound = math.sqrt(6 / (3 + 4))  # Glorot of one (3, 4) block, not of the (3, 16) matrix
    assert np.abs(backend.to_numpy(layer.weight_ih.data)).max() <= bound


def test_output_shapes_and_return_state(rng):
    x = data(rng, 3, 6, 2)
    out, h, c = make("lstm", 2, 5, return_sequences=True, return_state=True)(x)
    assert tuple(out.shape) == (3, 6, 5) and tuple(h.shape) == (3, 5) == tuple(c.shape)
    np.testing.assert_allclose(backend.to_numpy(out)[:, -1], backend.to_numpy(h), atol=0)
    out, h = make("gru", 2, 5, return_state=True)(x)
    assert tuple(out.shape) == (3, 5)
    np.testing.assert_allclose(backend.to_numpy(out), backend.to_numpy(h), atol=0)


# --------------------------------------------------------------------------- bad input
# Every check runs before any kernel, on the kernel path and on the reference path alike.


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


@pytest.mark.xfail(
    os.environ.get("GPUNET_BACKEND", "numpy") == "array_api_strict",
    reason="gpunet.checks cannot yet name an array-api-strict dtype in its message",
    raises=AssertionError,
    strict=True,
)
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


@pytest.mark.parametrize("cell", [RNN, LSTM, GRU])
def test_first_recurrent_layer_without_input_gradient(cell, rng):
    """input_grad=False: the same parameter gradients, and None for the input."""
    gpunet.seed(2)
    model = Sequential(cell(3, 4), Dense(4, 2)).astype("float64")
    x = gpunet.asarray(rng.standard_normal((2, 5, 3)), dtype="float64")
    y_grad = gpunet.asarray(rng.standard_normal((2, 2)), dtype="float64")
    results = []
    for input_grad in (True, False):
        model[0].input_grad = input_grad
        for p in model.parameters():
            p.grad = None
        model(x)
        returned = model.backward(y_grad)
        assert (returned is None) == (not input_grad)
        results.append([gpunet.to_numpy(p.grad) for p in model.parameters()])
    for a, e in zip(results[1], results[0], strict=True):
        np.testing.assert_array_equal(a, e)
