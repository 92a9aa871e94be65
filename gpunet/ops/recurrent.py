"""Recurrent cells: one spec per cell kind, with the reference math of one step.

A ``CellSpec`` tells the layer (``gpunet.nn.recurrent``), the sequence engine
(``gpunet.ops.bptt``) and the kernels everything that differs between cell kinds: the
number of gate blocks, whether a cell state travels beside h, what the forward pass saves
for the backward pass, the reference math of one step, and the kernel ops that run a whole
sequence. Adding a cell kind means adding a spec here and its two kernel ops in
``gpunet.kernels`` (``<name>_sequence_forward``, ``<name>_sequence_backward``).

Each step takes ``xw = x_t @ weight_ih`` and ``hw = h_prev @ weight_hh`` (both (N, G*H))
and the biases ``b_ih``, ``b_hh`` (G*H,). Gates are in PyTorch's order, so weights copy
from ``torch.nn.RNN/LSTM/GRU`` by transposing. With ``a = xw + b_ih`` and ``b = hw + b_hh``:

    RNN   h = tanh(a + b)                                  (or ReLU)
    LSTM  i, f, g, o = sigma, sigma, tanh, sigma of the four blocks of a + b
          c = f c_prev + i g,  h = o tanh(c)
    GRU   r, z = sigma of the first two blocks of a + b
          n = tanh(a_n + r b_n),  h = (1 - z) n + z h_prev

The step functions are pure array-API code (every backend, array-api-strict included):
the reference path of the engine and the test oracle of the kernels.

* ``forward(xw, hw, b_ih, b_hh, h_prev, c_prev) -> (h, c, saved)``: ``c`` None without a
  cell state, ``saved`` None when the backward pass needs nothing beyond the states.
* ``backward(dh, dc, h_prev, c_prev, h, c, saved) -> (d_xw, d_hw, dh_direct, dc_prev)``:
  ``dh`` the whole gradient reaching h_t; ``d_xw`` and ``d_hw`` the gradients of ``a`` and
  ``b`` (the same array except for GRU); ``dh_direct`` the part of the gradient of h_prev
  that does not pass through ``weight_hh`` (GRU's z path, else None); ``dc_prev`` the
  gradient reaching c_prev (LSTM, else None).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gpunet import kernels
from gpunet.backend import namespace
from gpunet.ops.activations import sigmoid


@dataclass(frozen=True)
class CellSpec:
    """What distinguishes one recurrent cell kind.

    Attributes:
        name: the kind, also the prefix of its kernel ops.
        gates: G, the blocks of H columns in ``weight_ih`` and ``weight_hh``.
        forward: the reference forward step (see the module docstring).
        backward: the reference backward step.
        cell_state: a cell state c travels beside h (LSTM; default False).
        saved: blocks of H columns the forward pass saves per step (default 0: none).
        separate_hw_grad: the gradient of ``hw`` differs from that of ``xw`` (GRU;
            default False).
    """

    name: str
    gates: int
    forward: Callable[..., tuple]
    backward: Callable[..., tuple]
    cell_state: bool = False
    saved: int = 0
    separate_hw_grad: bool = False

    @property
    def forward_op(self) -> str:
        """The kernel op that runs the forward pass over a sequence."""
        return f"{self.name}_sequence_forward"

    @property
    def backward_op(self) -> str:
        """The kernel op that runs the backward pass over a sequence."""
        return f"{self.name}_sequence_backward"


def _blocks(a: Any, count: int) -> list[Any]:
    hidden = a.shape[1] // count
    return [a[:, k * hidden : (k + 1) * hidden] for k in range(count)]


# --------------------------------------------------------------------------- RNN


def rnn_tanh_step_forward(xw, hw, b_ih, b_hh, h_prev, c_prev) -> tuple:
    """h = tanh(xw + b_ih + hw + b_hh)."""
    xp = namespace(xw, hw)
    return xp.tanh((xw + b_ih) + (hw + b_hh)), None, None


def rnn_tanh_step_backward(dh, dc, h_prev, c_prev, h, c, saved) -> tuple:
    """d pre = dh (1 - h^2)."""
    d_pre = dh * (1 - h * h)
    return d_pre, d_pre, None, None


def rnn_relu_step_forward(xw, hw, b_ih, b_hh, h_prev, c_prev) -> tuple:
    """h = max(xw + b_ih + hw + b_hh, 0)."""
    xp = namespace(xw, hw)
    pre = (xw + b_ih) + (hw + b_hh)
    return xp.maximum(pre, xp.zeros_like(pre)), None, None


def rnn_relu_step_backward(dh, dc, h_prev, c_prev, h, c, saved) -> tuple:
    """d pre = dh where h > 0, else 0."""
    xp = namespace(dh, h)
    d_pre = xp.where(h > 0, dh, xp.zeros_like(dh))
    return d_pre, d_pre, None, None


# --------------------------------------------------------------------------- LSTM


def lstm_step_forward(xw, hw, b_ih, b_hh, h_prev, c_prev) -> tuple:
    """Saves the activated gates (i, f, g, o) side by side, (N, 4H)."""
    xp = namespace(xw, hw, c_prev)
    pre_i, pre_f, pre_g, pre_o = _blocks((xw + b_ih) + (hw + b_hh), 4)
    i, f, g, o = sigmoid(pre_i), sigmoid(pre_f), xp.tanh(pre_g), sigmoid(pre_o)
    c = f * c_prev + i * g
    return o * xp.tanh(c), c, xp.concat([i, f, g, o], axis=1)


def lstm_step_backward(dh, dc, h_prev, c_prev, h, c, saved) -> tuple:
    """With dc_t = dc + dh o (1 - tanh(c)^2): d pre_i = dc_t g i (1 - i),
    d pre_f = dc_t c_prev f (1 - f), d pre_g = dc_t i (1 - g^2),
    d pre_o = dh tanh(c) o (1 - o), dc_prev = dc_t f."""
    xp = namespace(dh, dc, c)
    i, f, g, o = _blocks(saved, 4)
    tanh_c = xp.tanh(c)
    dc_total = dc + dh * o * (1 - tanh_c * tanh_c)
    d_pre = xp.concat(
        [
            dc_total * g * i * (1 - i),
            dc_total * c_prev * f * (1 - f),
            dc_total * i * (1 - g * g),
            dh * tanh_c * o * (1 - o),
        ],
        axis=1,
    )
    return d_pre, d_pre, None, dc_total * f


# --------------------------------------------------------------------------- GRU


def gru_step_forward(xw, hw, b_ih, b_hh, h_prev, c_prev) -> tuple:
    """Saves (r, z, n, hw_n + b_hn) side by side, (N, 4H)."""
    xp = namespace(xw, hw, h_prev)
    x_r, x_z, x_n = _blocks(xw + b_ih, 3)
    h_r, h_z, h_n = _blocks(hw + b_hh, 3)
    r, z = sigmoid(x_r + h_r), sigmoid(x_z + h_z)
    n = xp.tanh(x_n + r * h_n)
    return (1 - z) * n + z * h_prev, None, xp.concat([r, z, n, h_n], axis=1)


def gru_step_backward(dh, dc, h_prev, c_prev, h, c, saved) -> tuple:
    """d x_n = dh (1 - z)(1 - n^2), d hw_n = r d x_n, d pre_z = dh (h_prev - n) z (1 - z),
    d pre_r = d x_n hw_n r (1 - r); dh z reaches h_prev directly."""
    xp = namespace(dh, h_prev, saved)
    r, z, n, h_n = _blocks(saved, 4)
    d_xn = dh * (1 - z) * (1 - n * n)
    d_z = dh * (h_prev - n) * z * (1 - z)
    d_r = d_xn * h_n * r * (1 - r)
    d_xw = xp.concat([d_r, d_z, d_xn], axis=1)
    d_hw = xp.concat([d_r, d_z, d_xn * r], axis=1)
    return d_xw, d_hw, dh * z, None


# --------------------------------------------------------------------------- the specs

RNN_TANH = CellSpec("rnn_tanh", 1, rnn_tanh_step_forward, rnn_tanh_step_backward)
RNN_RELU = CellSpec("rnn_relu", 1, rnn_relu_step_forward, rnn_relu_step_backward)
LSTM = CellSpec("lstm", 4, lstm_step_forward, lstm_step_backward, cell_state=True, saved=4)
GRU = CellSpec("gru", 3, gru_step_forward, gru_step_backward, saved=4, separate_hw_grad=True)

SPECS = {spec.name: spec for spec in (RNN_TANH, RNN_RELU, LSTM, GRU)}

for _spec in SPECS.values():
    kernels.register(_spec.forward_op, "recurrent")
    kernels.register(_spec.backward_op, "recurrent")
