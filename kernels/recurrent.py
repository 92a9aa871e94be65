"""Recurrent sequence ops: one compiled call per sequence and direction.

The ops ``<cell>_sequence_forward`` and ``<cell>_sequence_backward`` for each cell kind
(``rnn_tanh``, ``rnn_relu``, ``lstm``, ``gru``), which ``gpunet.ops.bptt`` looks up by the
names its cell specs give, on the CPU (``recurrent_cpu``) and on CUDA
(``recurrent_cuda``); the pointwise math of every cell is in ``recurrent_cells``. Every
op takes the same arguments, whatever the cell, and writes its outputs in place:

    forward(x, weight_ih, weight_hh, b_ih, b_hh, states, cells, saved, rows)
    backward(weight_hh, states, cells, saved, grad_states, dh, dc, d_xw, d_hw)

(array layouts in ``recurrent_cpu``; a cell ignores the arguments it has no use for).
"""

from __future__ import annotations

from .recurrent_cpu import (
    gru_sequence_backward_cpu,
    gru_sequence_forward_cpu,
    lstm_sequence_backward_cpu,
    lstm_sequence_forward_cpu,
    rnn_relu_sequence_backward_cpu,
    rnn_relu_sequence_forward_cpu,
    rnn_tanh_sequence_backward_cpu,
    rnn_tanh_sequence_forward_cpu,
)
from .recurrent_cuda import (
    gru_sequence_backward_cuda,
    gru_sequence_forward_cuda,
    lstm_sequence_backward_cuda,
    lstm_sequence_forward_cuda,
    rnn_relu_sequence_backward_cuda,
    rnn_relu_sequence_forward_cuda,
    rnn_tanh_sequence_backward_cuda,
    rnn_tanh_sequence_forward_cuda,
)

__all__ = [
    "gru_sequence_backward_cpu",
    "gru_sequence_backward_cuda",
    "gru_sequence_forward_cpu",
    "gru_sequence_forward_cuda",
    "lstm_sequence_backward_cpu",
    "lstm_sequence_backward_cuda",
    "lstm_sequence_forward_cpu",
    "lstm_sequence_forward_cuda",
    "rnn_relu_sequence_backward_cpu",
    "rnn_relu_sequence_backward_cuda",
    "rnn_relu_sequence_forward_cpu",
    "rnn_relu_sequence_forward_cuda",
    "rnn_tanh_sequence_backward_cpu",
    "rnn_tanh_sequence_backward_cuda",
    "rnn_tanh_sequence_forward_cpu",
    "rnn_tanh_sequence_forward_cuda",
]
