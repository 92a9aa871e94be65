"""The pointwise math of one recurrent step (RNN, LSTM, GRU), forward and backward.

Each step takes ``xw = x_t @ weight_ih`` and ``hw = h_prev @ weight_hh`` (both (N, G*H),
computed by GEMMs outside) and the biases ``b_ih``, ``b_hh`` (G*H,), which the fused
kernels add in the same pass. Gates are in PyTorch's order, so weights copy from
``torch.nn.RNN/LSTM/GRU`` by transposing. With ``a = xw + b_ih`` and ``b = hw + b_hh``:

    RNN   h = tanh(a + b)                                  (or ReLU)
    LSTM  i, f, g, o = sigma, sigma, tanh, sigma of the four blocks of a + b
          c = f c_prev + i g,  h = o tanh(c)
    GRU   r, z = sigma of the first two blocks of a + b
          n = tanh(a_n + r b_n),  h = (1 - z) n + z h_prev

The functions ending in ``_reference`` are pure array-API code (they run on every
backend, array-api-strict included) and are the test oracle of the fused Numba kernels
in ``gpunet.kernels.recurrent``. The functions without it use the kernel when
``backend.kernel(op, xp)`` gives one and the reference otherwise.

Backward functions take ``grad_h`` (the loss gradient reaching ``h_t`` from the layer's
output) and ``dh_rec`` (the gradient reaching ``h_t`` through the next step's GEMM)
separately, so that the kernel adds them in the same pass.
"""

from __future__ import annotations

from typing import Any

from gpunet import backend, kernels
from gpunet.backend import namespace
from gpunet.ops.activations import sigmoid

for _op in (
    "rnn_cell_forward",
    "rnn_cell_backward",
    "lstm_cell_forward",
    "lstm_cell_backward",
    "gru_cell_forward",
    "gru_cell_backward",
    "sequence_rows",
):
    kernels.register(_op, "recurrent")

GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def _blocks(a: Any, count: int) -> list[Any]:
    hidden = a.shape[1] // count
    return [a[:, k * hidden : (k + 1) * hidden] for k in range(count)]


# --------------------------------------------------------------------------- references


def rnn_cell_forward_reference(xw: Any, hw: Any, b_ih: Any, b_hh: Any, relu: bool = False) -> Any:
    """h = tanh(xw + b_ih + hw + b_hh), or max(., 0) with ``relu=True``."""
    xp = namespace(xw, hw, b_hh)
    pre = (xw + b_ih) + (hw + b_hh)
    return xp.maximum(pre, xp.zeros_like(pre)) if relu else xp.tanh(pre)


def rnn_cell_backward_reference(grad_h: Any, dh_rec: Any, h: Any, relu: bool = False) -> Any:
    """d pre = (grad_h + dh_rec) * (1 - h**2), or * [h > 0] with ``relu=True``."""
    xp = namespace(grad_h, dh_rec, h)
    dh = grad_h + dh_rec
    return xp.where(h > 0, dh, xp.zeros_like(dh)) if relu else dh * (1 - h * h)


def lstm_cell_forward_reference(xw: Any, hw: Any, b_ih: Any, b_hh: Any, c_prev: Any) -> tuple:
    """Returns ``(h, c, gates)``, gates the activated (i, f, g, o) side by side (N, 4H)."""
    xp = namespace(xw, hw, b_hh, c_prev)
    pre_i, pre_f, pre_g, pre_o = _blocks((xw + b_ih) + (hw + b_hh), 4)
    i, f, g, o = sigmoid(pre_i), sigmoid(pre_f), xp.tanh(pre_g), sigmoid(pre_o)
    c = f * c_prev + i * g
    return o * xp.tanh(c), c, xp.concat([i, f, g, o], axis=1)


def lstm_cell_backward_reference(
    grad_h: Any, dh_rec: Any, dc: Any, c_prev: Any, c: Any, gates: Any
) -> tuple:
    """Returns ``(d_pre, dc_prev)``: d_pre (N, 4H) the gradient of the gate
    pre-activations, dc_prev the gradient reaching ``c_prev``.

    With dh = grad_h + dh_rec and dc_t = dc + dh o (1 - tanh(c)^2):
    d pre_i = dc_t g i (1 - i), d pre_f = dc_t c_prev f (1 - f),
    d pre_g = dc_t i (1 - g^2), d pre_o = dh tanh(c) o (1 - o), dc_prev = dc_t f.
    """
    xp = namespace(grad_h, dh_rec, dc, c)
    i, f, g, o = _blocks(gates, 4)
    dh = grad_h + dh_rec
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
    return d_pre, dc_total * f


def gru_cell_forward_reference(xw: Any, hw: Any, b_ih: Any, b_hh: Any, h_prev: Any) -> tuple:
    """Returns ``(h, saved)``, saved = (r, z, n, hw_n + b_hn) side by side (N, 4H)."""
    xp = namespace(xw, hw, b_hh, h_prev)
    x_r, x_z, x_n = _blocks(xw + b_ih, 3)
    h_r, h_z, h_n = _blocks(hw + b_hh, 3)
    r, z = sigmoid(x_r + h_r), sigmoid(x_z + h_z)
    n = xp.tanh(x_n + r * h_n)
    return (1 - z) * n + z * h_prev, xp.concat([r, z, n, h_n], axis=1)


def gru_cell_backward_reference(
    grad_h: Any, dh_rec: Any, carry: Any, h_prev: Any, saved: Any
) -> tuple:
    """Returns ``(d_xw, d_hw, carry_prev)``: the gradients of xw and of hw + b_hh (they
    differ in the n block by the factor r), and dh * z, the part of the gradient reaching
    ``h_prev`` directly (not through the GEMM).

    With dh = grad_h + dh_rec + carry: d x_n = dh (1 - z)(1 - n^2), d hw_n = r d x_n,
    d pre_z = dh (h_prev - n) z (1 - z), d pre_r = d x_n hw_n r (1 - r).
    """
    xp = namespace(grad_h, dh_rec, carry, h_prev, saved)
    r, z, n, h_n = _blocks(saved, 4)
    dh = grad_h + dh_rec + carry
    d_xn = dh * (1 - z) * (1 - n * n)
    d_z = dh * (h_prev - n) * z * (1 - z)
    d_r = d_xn * h_n * r * (1 - r)
    d_xw = xp.concat([d_r, d_z, d_xn], axis=1)
    d_hw = xp.concat([d_r, d_z, d_xn * r], axis=1)
    return d_xw, d_hw, dh * z


# --------------------------------------------------------------------------- dispatch


def rnn_cell_forward(xw: Any, hw: Any, b_ih: Any, b_hh: Any, relu: bool = False) -> Any:
    """One RNN step; see ``rnn_cell_forward_reference``."""
    xp = namespace(xw, hw, b_hh)
    kernel = backend.kernel("rnn_cell_forward", xp)
    if kernel is None:
        return rnn_cell_forward_reference(xw, hw, b_ih, b_hh, relu)
    h = xp.empty(hw.shape, dtype=hw.dtype)
    kernel(xw, hw, b_ih, b_hh, h, relu)
    return h


def rnn_cell_backward(grad_h: Any, dh_rec: Any, h: Any, relu: bool = False) -> Any:
    """One RNN step's backward; see ``rnn_cell_backward_reference``."""
    xp = namespace(grad_h, dh_rec, h)
    kernel = backend.kernel("rnn_cell_backward", xp)
    if kernel is None:
        return rnn_cell_backward_reference(grad_h, dh_rec, h, relu)
    d_pre = xp.empty(h.shape, dtype=h.dtype)
    kernel(grad_h, dh_rec, h, d_pre, relu)
    return d_pre


def lstm_cell_forward(xw: Any, hw: Any, b_ih: Any, b_hh: Any, c_prev: Any) -> tuple:
    """One LSTM step; see ``lstm_cell_forward_reference``."""
    xp = namespace(xw, hw, b_hh, c_prev)
    kernel = backend.kernel("lstm_cell_forward", xp)
    if kernel is None:
        return lstm_cell_forward_reference(xw, hw, b_ih, b_hh, c_prev)
    h, c = xp.empty(c_prev.shape, dtype=hw.dtype), xp.empty(c_prev.shape, dtype=hw.dtype)
    gates = xp.empty(hw.shape, dtype=hw.dtype)
    kernel(xw, hw, b_ih, b_hh, c_prev, h, c, gates)
    return h, c, gates


def lstm_cell_backward(grad_h: Any, dh_rec: Any, dc: Any, c_prev: Any, c: Any, gates: Any) -> tuple:
    """One LSTM step's backward; see ``lstm_cell_backward_reference``."""
    xp = namespace(grad_h, dh_rec, dc, c)
    kernel = backend.kernel("lstm_cell_backward", xp)
    if kernel is None:
        return lstm_cell_backward_reference(grad_h, dh_rec, dc, c_prev, c, gates)
    dc_prev = xp.asarray(dc, copy=True)
    d_pre = xp.empty(gates.shape, dtype=gates.dtype)
    kernel(grad_h, dh_rec, dc_prev, c_prev, c, gates, d_pre)
    return d_pre, dc_prev


def gru_cell_forward(xw: Any, hw: Any, b_ih: Any, b_hh: Any, h_prev: Any) -> tuple:
    """One GRU step; see ``gru_cell_forward_reference``."""
    xp = namespace(xw, hw, b_hh, h_prev)
    kernel = backend.kernel("gru_cell_forward", xp)
    if kernel is None:
        return gru_cell_forward_reference(xw, hw, b_ih, b_hh, h_prev)
    n_batch, hidden = h_prev.shape
    h = xp.empty((n_batch, hidden), dtype=hw.dtype)
    saved = xp.empty((n_batch, 4 * hidden), dtype=hw.dtype)
    kernel(xw, hw, b_ih, b_hh, h_prev, h, saved)
    return h, saved


def gru_cell_backward(grad_h: Any, dh_rec: Any, carry: Any, h_prev: Any, saved: Any) -> tuple:
    """One GRU step's backward; see ``gru_cell_backward_reference``."""
    xp = namespace(grad_h, dh_rec, carry, h_prev, saved)
    kernel = backend.kernel("gru_cell_backward", xp)
    if kernel is None:
        return gru_cell_backward_reference(grad_h, dh_rec, carry, h_prev, saved)
    n_batch, hidden = h_prev.shape
    carry_prev = xp.asarray(carry, copy=True)
    d_xw = xp.empty((n_batch, 3 * hidden), dtype=saved.dtype)
    d_hw = xp.empty((n_batch, 3 * hidden), dtype=saved.dtype)
    kernel(grad_h, dh_rec, carry_prev, h_prev, saved, d_xw, d_hw)
    return d_xw, d_hw, carry_prev
