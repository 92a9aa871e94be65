"""Recurrent layers: RNN, LSTM and GRU, trained by backpropagation through time."""

from __future__ import annotations

import math
from typing import Any

from gpunet import checks
from gpunet import init as initializers
from gpunet.backend import namespace
from gpunet.nn.layer import Layer
from gpunet.nn.parameter import Parameter
from gpunet.ops import bptt, recurrent
from gpunet.ops.linear import matmul

_COMMON_ARGS = """
        input_size: features per time step, F.
        hidden_size: units of the hidden state, H.
        bias: learn the biases ``bias_ih`` and ``bias_hh`` (default True).
        return_sequences: output every hidden state (N, T, H) instead of the last one
            (N, H) (default False). Stacked recurrent layers need it on all but the last.
        return_state: also return the final state: ``(output, h_T)``, for LSTM
            ``(output, h_T, c_T)`` (default False).
        stateful: carry the final state of one call into the next as its initial state,
            with the gradient cut there (truncated BPTT over long sequences cut into
            chunks); ``reset_state()`` forgets it (default False).
        init: initialiser of each gate block of ``weight_ih`` (a name from
            ``gpunet.init`` or a function of a shape); default None: PyTorch's
            U(-1/sqrt(H), 1/sqrt(H)) for every weight and bias. With ``init`` given, the
            biases start at zero.
        recurrent_init: initialiser of each gate block of ``weight_hh`` (for example
            ``"orthogonal"``); default None: the same as ``init``.
        dtype: parameter dtype (default float32).

    Forward: ``layer(x, h0=None)`` (LSTM: ``layer(x, h0=None, c0=None)``) with ``x`` of
    shape (N, T, F), batch first, N >= 1 and T >= 1, and initial states of shape (N, H)
    (zeros when None); integer or other floating inputs are cast to the layer's dtype.
    ``backward(grad_output)`` returns the gradient with respect to ``x``; with
    ``return_state`` it also takes the tuple ``(grad_output, grad_h_T[, grad_c_T])``
    (entries may be None). The gradients of the initial states are then in
    ``grad_h0`` (and ``grad_c0``), or None when no initial state was given or carried.
    Set the attribute ``input_grad`` to False on a network's first layer, whose input
    needs no gradient: backward then returns None and skips that GEMM.

    Parameters (the transposes of PyTorch's, gate blocks side by side in PyTorch's
    order, so weights copy from ``torch.nn.{RNN,LSTM,GRU}`` as ``weight_ih_l0.T``):
    ``weight_ih`` (F, G*H), ``weight_hh`` (H, G*H), ``bias_ih``, ``bias_hh`` (G*H,).
"""


class _Recurrent(Layer):
    """The parameters, the time loop's inputs and outputs, and the state handling shared
    by RNN, LSTM and GRU; what differs between them is their ``spec``."""

    spec: recurrent.CellSpec = recurrent.RNN_TANH

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        return_sequences: bool = False,
        return_state: bool = False,
        stateful: bool = False,
        init: Any = None,
        recurrent_init: Any = None,
        dtype: Any = None,
    ):
        name = type(self).__name__
        if input_size < 1 or hidden_size < 1:
            raise ValueError(
                f"{name}: input_size and hidden_size must be >= 1, "
                f"got {input_size} and {hidden_size}"
            )
        self.input_size, self.hidden_size = int(input_size), int(hidden_size)
        self.return_sequences, self.return_state = bool(return_sequences), bool(return_state)
        self.stateful = bool(stateful)
        self.init, self.recurrent_init, self.has_bias = init, recurrent_init, bool(bias)
        gates, hidden = self.spec.gates, self.hidden_size
        self.weight_ih = Parameter(
            self._weight((self.input_size, hidden), gates, init, dtype), "weight_ih"
        )
        self.weight_hh = Parameter(
            self._weight((hidden, hidden), gates, recurrent_init or init, dtype), "weight_hh"
        )
        self.bias_ih = self.bias_hh = None
        if bias:
            self.bias_ih = Parameter(self._bias(gates * hidden, init, dtype), "bias_ih")
            self.bias_hh = Parameter(self._bias(gates * hidden, init, dtype), "bias_hh")
        self._carried: tuple | None = None
        self._cache: bptt.SequenceCache | None = None
        self.grad_h0 = self.grad_c0 = None
        self.input_grad = True

    def _weight(self, block: tuple[int, int], gates: int, init: Any, dtype: Any) -> Any:
        if init is None:
            bound = 1.0 / math.sqrt(self.hidden_size)
            return initializers.uniform(
                (block[0], gates * block[1]), low=-bound, high=bound, dtype=dtype
            )
        make = initializers.get(init, layer=type(self).__name__)
        parts = [make(block, dtype=dtype) for _ in range(gates)]
        return namespace(*parts).concat(parts, axis=1)

    def _bias(self, size: int, init: Any, dtype: Any) -> Any:
        if init is not None:
            return initializers.zeros((size,), dtype=dtype)
        bound = 1.0 / math.sqrt(self.hidden_size)
        return initializers.uniform((size,), low=-bound, high=bound, dtype=dtype)

    # ---------------------------------------------------------------- forward

    def _run(self, x: Any, h0: Any, c0: Any) -> Any:
        where = f"{type(self).__name__}.forward"
        dtype = self.weight_ih.data.dtype
        x = checks.floating(x, where, dtype)
        checks.shape(x, where, ("N", "T", self.input_size))
        checks.nonempty(x, where)
        n_batch, steps, features = x.shape
        if steps == 0:
            raise ValueError(
                f"{where}: input is an empty sequence (shape {tuple(x.shape)}); "
                "expected at least one time step"
            )
        xp = namespace(x, self.weight_ih.data)
        given = h0 is not None or c0 is not None
        if self.stateful and self._carried is not None and not given:
            if self._carried[0].shape[0] != n_batch:
                raise ValueError(
                    f"{where}: stateful layer carries state for batch "
                    f"{self._carried[0].shape[0]} but got batch {n_batch}; "
                    "call reset_state() first"
                )
            h0, c0 = self._carried
            given = True
        h0 = self._initial(h0, "h0", where, n_batch, xp, dtype)
        c0 = self._initial(c0, "c0", where, n_batch, xp, dtype) if self.spec.cell_state else None
        # Time-major, so that each step's rows are contiguous.
        x_steps = xp.permute_dims(x, (1, 0, 2))
        b_ih, b_hh = self._biases(xp, dtype)
        weights = (self.weight_ih.data, self.weight_hh.data, b_ih, b_hh)
        # the previous cache is replaced here: its internal buffers are free to reuse
        cache = bptt.sequence_forward(self.spec, x_steps, *weights, h0, c0, reuse=self._cache)
        self._cache, self._x_shape, self._given = cache, x.shape, given
        h_last = cache.states[steps, ...]
        c_last = cache.cells[steps, ...] if self.spec.cell_state else None
        if self.stateful:
            self._carried = (h_last, c_last)
        if self.return_sequences:
            output = xp.permute_dims(cache.states[1:, ...], (1, 0, 2))
        else:
            output = h_last
        if not self.return_state:
            return output
        return (output, h_last, c_last) if self.spec.cell_state else (output, h_last)

    def _initial(
        self, state: Any, label: str, where: str, n_batch: int, xp: Any, dtype: Any
    ) -> Any:
        if state is None:
            return xp.zeros((n_batch, self.hidden_size), dtype=dtype)
        state = checks.floating(state, where, dtype, what=label)
        checks.same_shape(state, (n_batch, self.hidden_size), where, label)
        return state

    def _biases(self, xp: Any, dtype: Any) -> tuple[Any, Any]:
        if self.bias_ih is None:
            zeros = xp.zeros((self.spec.gates * self.hidden_size,), dtype=dtype)
            return zeros, zeros
        return self.bias_ih.data, self.bias_hh.data

    # ---------------------------------------------------------------- backward

    def backward(self, grad_out: Any) -> Any:
        where = f"{type(self).__name__}.backward"
        checks.after_forward(self._cache, where)
        grad_out, grad_h_last, grad_c_last = self._gradients(grad_out, where)
        xp = namespace(self._cache.states)
        n_batch, steps, features = self._x_shape
        grad_states = None
        if grad_out is not None and self.return_sequences:
            grad_states = xp.permute_dims(grad_out, (1, 0, 2))
        elif grad_out is not None:
            grad_h_last = grad_out if grad_h_last is None else grad_out + grad_h_last
        grads = bptt.sequence_backward(
            self._cache, self.weight_hh.data, grad_states, grad_h_last, grad_c_last
        )
        d_xw = xp.reshape(grads.xw, (steps * n_batch, -1))
        self.weight_ih.accumulate(grads.weight_ih)
        self.weight_hh.accumulate(grads.weight_hh)
        if self.bias_ih is not None:
            self.bias_ih.accumulate(grads.b_ih)
            self.bias_hh.accumulate(grads.b_hh)
        self.grad_h0 = grads.h0 if self._given else None
        self.grad_c0 = grads.c0 if self._given else None
        if not self.input_grad:
            return None
        grad_x = matmul(d_xw, xp.matrix_transpose(self.weight_ih.data))
        return xp.permute_dims(xp.reshape(grad_x, (steps, n_batch, features)), (1, 0, 2))

    def _gradients(self, grad_out: Any, where: str) -> tuple[Any, Any, Any]:
        """(output, h_T, c_T) gradients from what ``backward`` was given, checked."""
        n_batch, steps, _ = self._x_shape
        state_shape = (n_batch, self.hidden_size)
        given: tuple = (grad_out, None, None)
        if self.return_state and isinstance(grad_out, tuple):
            count = 3 if self.spec.cell_state else 2
            if not 1 <= len(grad_out) <= count:
                raise ValueError(
                    f"{where}: expected up to {count} gradients (output, h_T"
                    f"{', c_T' if count == 3 else ''}), got {len(grad_out)}"
                )
            given = (*grad_out, None, None)[:3]
        out_shape = (n_batch, steps, self.hidden_size) if self.return_sequences else state_shape
        dtype = self.weight_ih.data.dtype
        checked = []
        for grad, shape, what in zip(
            given, (out_shape, state_shape, state_shape), ("output", "h_T", "c_T"), strict=True
        ):
            if grad is not None:
                grad = checks.floating(grad, where, dtype, what=f"the gradient of {what}")
                checks.same_shape(grad, shape, where, f"the gradient of {what}")
            checked.append(grad)
        return checked[0], checked[1], checked[2]

    # ---------------------------------------------------------------- state

    def reset_state(self) -> None:
        """Forget the state a ``stateful`` layer carries; the next call starts from zeros."""
        self._carried = None

    def config(self) -> dict[str, Any]:
        """The constructor arguments, to build a fresh layer of the same kind."""
        return {
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "bias": self.has_bias,
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "stateful": self.stateful,
            "init": self.init,
            "recurrent_init": self.recurrent_init,
            "dtype": self.weight_ih.data.dtype,
        }

    def __repr__(self) -> str:
        flags = "".join(
            f", {flag}=True"
            for flag in ("return_sequences", "return_state", "stateful")
            if getattr(self, flag)
        )
        return f"{type(self).__name__}({self.input_size}, {self.hidden_size}{flags})"


class RNN(_Recurrent):
    __doc__ = (
        """Elman recurrent layer: h_t = tanh(x_t W_ih + b_ih + h_{t-1} W_hh + b_hh).

    Args:
        nonlinearity: ``"tanh"`` (default) or ``"relu"``."""
        + _COMMON_ARGS
    )

    def __init__(self, input_size: int, hidden_size: int, nonlinearity: str = "tanh", **kwargs):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(
                f"RNN: unknown nonlinearity {nonlinearity!r}; expected 'tanh' or 'relu'"
            )
        self.nonlinearity = nonlinearity
        self.spec = recurrent.RNN_TANH if nonlinearity == "tanh" else recurrent.RNN_RELU
        super().__init__(input_size, hidden_size, **kwargs)

    def forward(self, x: Any, h0: Any = None) -> Any:
        return self._run(x, h0, None)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "nonlinearity": self.nonlinearity}


class LSTM(_Recurrent):
    __doc__ = (
        """Long short-term memory (Hochreiter & Schmidhuber, 1997), PyTorch's equations.

    With a_t = x_t W_ih + b_ih + h_{t-1} W_hh + b_hh split into four blocks:
    i, f, o = sigmoid(a_i, a_f, a_o), g = tanh(a_g), c_t = f c_{t-1} + i g,
    h_t = o tanh(c_t).

    Args:"""
        + _COMMON_ARGS
    )

    spec = recurrent.LSTM

    def forward(self, x: Any, h0: Any = None, c0: Any = None) -> Any:
        return self._run(x, h0, c0)


class GRU(_Recurrent):
    __doc__ = (
        """Gated recurrent unit (Cho et al., 2014), PyTorch's equations.

    With a = x_t W_ih + b_ih and b = h_{t-1} W_hh + b_hh split into blocks r, z, n:
    r = sigmoid(a_r + b_r), z = sigmoid(a_z + b_z), n = tanh(a_n + r b_n),
    h_t = (1 - z) n + z h_{t-1}.

    Args:"""
        + _COMMON_ARGS
    )

    spec = recurrent.GRU

    def forward(self, x: Any, h0: Any = None) -> Any:
        return self._run(x, h0, None)
