"""RNN, LSTM and GRU against torch.nn.RNN/LSTM/GRU with copied weights.

Forward outputs, final states and every parameter gradient (and the input's and initial
states') must agree to 1e-5 in float32 and 1e-10 in float64.
"""

from __future__ import annotations

import numpy as np
import pytest

from gpunet import backend
from gpunet.nn import GRU, LSTM, RNN, Bidirectional

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.crosscheck

TOLERANCE = {"float32": 1e-5, "float64": 1e-10}
PAIRS = {
    "rnn_tanh": (lambda f, h, **kw: RNN(f, h, **kw), lambda f, h: torch.nn.RNN(f, h)),
    "rnn_relu": (
        lambda f, h, **kw: RNN(f, h, nonlinearity="relu", **kw),
        lambda f, h: torch.nn.RNN(f, h, nonlinearity="relu"),
    ),
    "lstm": (lambda f, h, **kw: LSTM(f, h, **kw), lambda f, h: torch.nn.LSTM(f, h)),
    "gru": (lambda f, h, **kw: GRU(f, h, **kw), lambda f, h: torch.nn.GRU(f, h)),
}


def _copy_weights(ours, theirs, suffix=""):
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        value = getattr(theirs, f"{name}_l0{suffix}").detach().numpy()
        target = getattr(ours, name)
        target.data = backend.asarray(
            value.T if value.ndim == 2 else value, dtype=target.data.dtype
        )


def _close(ours, theirs, dtype, what):
    np.testing.assert_allclose(
        backend.to_numpy(ours),
        theirs.detach().numpy(),
        rtol=TOLERANCE[dtype],
        atol=TOLERANCE[dtype],
        err_msg=what,
    )


# (batch, steps, features, hidden): products per step small enough for the kernels' plain
# loop, and large enough for the BLAS.
SIZES = {"small": (3, 6, 5, 7), "large": (17, 7, 5, 45)}


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("with_state", [False, True], ids=["zero_state", "given_state"])
@pytest.mark.parametrize("cell", list(PAIRS))
def test_matches_torch(cell, with_state, dtype, size, rng):
    n_batch, steps, features, hidden = SIZES[size]
    make_ours, make_theirs = PAIRS[cell]
    torch_dtype = getattr(torch, dtype)
    theirs = make_theirs(features, hidden).to(torch_dtype)
    ours = make_ours(features, hidden, return_sequences=True, return_state=True, dtype=dtype)
    _copy_weights(ours, theirs)
    lstm = cell == "lstm"

    x = rng.standard_normal((n_batch, steps, features))
    states = [rng.standard_normal((n_batch, hidden)) for _ in range(2 if lstm else 1)]
    grad_out = rng.standard_normal((n_batch, steps, hidden))
    grad_last = [rng.standard_normal((n_batch, hidden)) for _ in states]

    x_t = torch.tensor(x.transpose(1, 0, 2), dtype=torch_dtype, requires_grad=True)
    states_t = [torch.tensor(s[None], dtype=torch_dtype, requires_grad=True) for s in states]
    if with_state:
        out_t, last_t = theirs(x_t, tuple(states_t) if lstm else states_t[0])
    else:
        out_t, last_t = theirs(x_t)
    last_t = list(last_t) if lstm else [last_t]
    loss = (out_t * torch.tensor(grad_out.transpose(1, 0, 2), dtype=torch_dtype)).sum()
    for value, weight in zip(last_t, grad_last, strict=True):
        loss = loss + (value[0] * torch.tensor(weight, dtype=torch_dtype)).sum()
    loss.backward()

    def device(a):
        return backend.asarray(a, dtype=dtype)

    given = [device(s) for s in states] if with_state else []
    outputs = ours(device(x), *given)
    ours.zero_grad()
    grad_x = ours.backward((device(grad_out), *[device(g) for g in grad_last]))

    _close(outputs[0], out_t.transpose(0, 1), dtype, "output")
    for k, value in enumerate(last_t):
        _close(outputs[1 + k], value[0], dtype, f"final state {k}")
    _close(grad_x, x_t.grad.transpose(0, 1), dtype, "grad x")
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        grad_t = getattr(theirs, f"{name}_l0").grad
        grad_t = grad_t.T if grad_t.ndim == 2 else grad_t
        _close(getattr(ours, name).grad, grad_t, dtype, f"grad {name}")
    if with_state:
        _close(ours.grad_h0, states_t[0].grad[0], dtype, "grad h0")
        if lstm:
            _close(ours.grad_c0, states_t[1].grad[0], dtype, "grad c0")


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_bidirectional_matches_torch(cell, rng):
    n_batch, steps, features, hidden = 2, 5, 3, 4
    make_ours, _ = PAIRS[cell]
    theirs = getattr(torch.nn, cell.upper())(features, hidden, bidirectional=True).double()
    ours = Bidirectional(make_ours(features, hidden, return_sequences=True, dtype="float64"))
    _copy_weights(ours.forward_layer, theirs)
    _copy_weights(ours.backward_layer, theirs, "_reverse")
    x = rng.standard_normal((n_batch, steps, features))
    grad_out = rng.standard_normal((n_batch, steps, 2 * hidden))
    x_t = torch.tensor(x.transpose(1, 0, 2), requires_grad=True)
    out_t, _ = theirs(x_t)
    (out_t * torch.tensor(grad_out.transpose(1, 0, 2))).sum().backward()
    out = ours(backend.asarray(x, dtype="float64"))
    grad_x = ours.backward(backend.asarray(grad_out, dtype="float64"))
    _close(out, out_t.transpose(0, 1), "float64", "output")
    _close(grad_x, x_t.grad.transpose(0, 1), "float64", "grad x")
    reverse_grad = theirs.weight_hh_l0_reverse.grad.T
    _close(ours.backward_layer.weight_hh.grad, reverse_grad, "float64", "grad weight_hh reverse")
