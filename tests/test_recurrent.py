"""RNN, LSTM, GRU and Bidirectional: gradients through time, states, errors."""

from __future__ import annotations

import math

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


@pytest.mark.parametrize("cell", list(CELLS))
def test_repeat_runs_are_bit_identical(cell, rng):
    """The same input twice gives the same outputs and gradients, bit for bit."""
    layer = CELLS[cell](6, 40, return_sequences=True)  # float32, products through the BLAS
    x = backend.asarray(rng.standard_normal((24, 9, 6)), dtype="float32")
    grad = backend.asarray(rng.standard_normal((24, 9, 40)), dtype="float32")
    runs = []
    for _ in range(2):
        layer.zero_grad()
        out = backend.to_numpy(layer(x))
        grad_x = backend.to_numpy(layer.backward(grad))
        runs.append([out, grad_x] + [backend.to_numpy(p.grad) for p in layer.parameters()])
    for first, second in zip(*runs, strict=True):
        np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("cell", list(CELLS))
def test_a_second_forward_keeps_what_the_first_returned(cell, rng):
    """A layer's next pass reuses the internal buffers of its last (the saved gates, the
    rows of the weight gradients), never the outputs or states it returned."""
    layer = make(cell, return_sequences=True, return_state=True)
    x = data(rng, 4, 6, 3)
    first = layer(x)
    kept = [np.array(backend.to_numpy(a), copy=True) for a in first]
    rows = layer._cache.rows
    second = layer(data(rng, 4, 6, 3))
    for returned, copy in zip(first, kept, strict=True):
        np.testing.assert_array_equal(backend.to_numpy(returned), copy)
    assert not np.array_equal(backend.to_numpy(second[0]), kept[0])
    compiled = backend.kernel(layer.spec.forward_op, backend.namespace(x)) is not None
    assert (layer._cache.rows is rows) == compiled
    layer(data(rng, 5, 6, 3))  # another batch size: new buffers
    assert layer._cache.rows is not rows and layer._cache.rows.shape == (6, 5, 1 + 3 + 5)
