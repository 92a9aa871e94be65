"""Bidirectional: a recurrent layer run forward and backward in time, outputs side by side."""

from __future__ import annotations

from typing import Any

from gpunet import checks
from gpunet.backend import namespace
from gpunet.nn.layer import Layer
from gpunet.nn.recurrent import _Recurrent


class Bidirectional(Layer):
    """Runs ``layer`` over the sequence and a fresh copy of it over the reversed sequence.

    Args:
        layer: an ``RNN``, ``LSTM`` or ``GRU`` (not ``return_state``, not ``stateful``).
            It becomes ``forward_layer``; ``backward_layer`` is a new layer built from the
            same arguments, with its own freshly initialised weights.

    Shapes:
        input (N, T, F). With ``return_sequences`` the output is (N, T, 2H): at each t
        the forward direction's h_t, then the backward direction's state after reading
        x_T ... x_t (re-aligned in time, as PyTorch's ``bidirectional=True``). Without
        it, (N, 2H): the final state of each direction (the forward one after x_T, the
        backward one after x_1).

    Parameter names are ``forward_layer.weight_ih`` ... and ``backward_layer.weight_ih``
    ...; PyTorch's ``weight_ih_l0_reverse`` maps to ``backward_layer.weight_ih``
    (transposed).
    """

    def __init__(self, layer: _Recurrent):
        if not isinstance(layer, _Recurrent):
            raise TypeError(
                f"Bidirectional: expected an RNN, LSTM or GRU layer, got {type(layer).__name__}"
            )
        if layer.return_state or layer.stateful:
            raise ValueError(
                "Bidirectional: the wrapped layer must have return_state=False and stateful=False"
            )
        self.forward_layer = layer
        self.backward_layer = type(layer)(**layer.config())
        self.return_sequences = layer.return_sequences

    def forward(self, x: Any) -> Any:
        x = self.checked_input(x, like=self.forward_layer.weight_ih.data)
        checks.shape(x, (self, "forward"), ("N", "T", self.forward_layer.input_size))
        xp = namespace(x)
        ahead = self.forward_layer(x)
        behind = self.backward_layer(xp.flip(x, axis=1))
        if self.return_sequences:
            behind = xp.flip(behind, axis=1)
        return self.remember_output(xp.concat([ahead, behind], axis=-1))

    def backward(self, grad_out: Any) -> Any:
        grad_out = self.checked_gradient(grad_out)
        xp = namespace(grad_out)
        hidden = self.forward_layer.hidden_size
        grad_ahead, grad_behind = grad_out[..., :hidden], grad_out[..., hidden:]
        if self.return_sequences:
            grad_behind = xp.flip(grad_behind, axis=1)
        grad_x = self.forward_layer.backward(grad_ahead)
        return grad_x + xp.flip(self.backward_layer.backward(grad_behind), axis=1)

    def __repr__(self) -> str:
        return f"Bidirectional({self.forward_layer!r})"
