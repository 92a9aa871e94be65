"""Backpropagation through time: a recurrent cell run over a whole sequence and back.

The input projection of every step, ``xw = x @ weight_ih``, arrives time-major,
(T, N, G*H), either computed by the caller or as a ``Projection``, which computes it
``CHUNK`` steps at a time (one GEMM each) just before those steps' cells read it, while
it is in cache; the biases are added by the cell's pointwise pass. Each forward step
is then one GEMM ``h_prev @ weight_hh`` plus the cell's pointwise math
(``gpunet.ops.recurrent``); each backward step is the pointwise backward plus one GEMM
``d_hw @ weight_hh.T``. The gradient of ``weight_hh`` is ONE GEMM over all steps at the
end, ``H_prev^T @ d_hw`` with ``H_prev`` the (T*N, H) stack of the states fed to the
steps.

Where a fused kernel exists (NumPy, CuPy) the loops write into preallocated (T+1, N, H)
state buffers and (T, N, ...) gate buffers, one kernel call per step. The batch rows are
independent through every step, so the CPU kernels may run a loop in shares of rows, one
per core, each share every step of its rows (``_over_rows``). Otherwise (and
with ``GPUNET_KERNELS=0``) the steps run the pure array-API reference and the results
are stacked; both paths give the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gpunet import backend
from gpunet.backend import namespace
from gpunet.ops import recurrent as cells
from gpunet.ops.linear import matmul

# Steps per GEMM of a ``Projection``. W3's forward pass (batch 64, T = 50, 32 inputs,
# 128 units, 2 cores) took 13.8 ms with chunks of 10 steps, 14.0 with 5 or 25, and 14.4
# with all 50 in one GEMM, whose 6.5 MB result left the cache before the cells read it;
# W3's whole training step a median 34.3 against 35.7 ms (5 interleaved rounds). W4's
# (RNN, a projection 4x smaller) 11.4 against 11.3 ms.
CHUNK = 10


class Projection:
    """The input projections ``x_t @ weight`` of a sequence, computed when sliced.

    Stands for the (T, N, G*H) array in ``sequence_forward``: ``projection[a:b]`` is
    the (b - a, N, G*H) projection of steps a to b - 1, made by one GEMM when asked.

    Args:
        x_steps: (T*N, F) the inputs, time-major (step t is rows t*N to t*N + N - 1).
        weight: (F, G*H).
        n_batch: N.
    """

    def __init__(self, x_steps: Any, weight: Any, n_batch: int):
        self.x_steps, self.weight, self.n_batch = x_steps, weight, n_batch
        self.shape = (x_steps.shape[0] // n_batch, n_batch, weight.shape[1])
        self.dtype = namespace(x_steps, weight).result_type(x_steps.dtype, weight.dtype)

    def __getitem__(self, index: slice | tuple[slice, slice]) -> Any:
        """``projection[a:b]``, or ``projection[a:b, rows]`` for some batch rows only."""
        steps, rows = index if isinstance(index, tuple) else (index, slice(None))
        start, stop, _ = steps.indices(self.shape[0])
        first, last, _ = rows.indices(self.n_batch)
        xp = namespace(self.x_steps, self.weight)
        x = xp.reshape(self.x_steps, (self.shape[0], self.n_batch, -1))[start:stop, first:last, ...]
        x = xp.reshape(x, ((stop - start) * (last - first), x.shape[2]))  # a copy for some rows
        return xp.reshape(x @ self.weight, (stop - start, last - first, self.shape[2]))


@dataclass
class SequenceCache:
    """What a forward pass over a sequence keeps for its backward pass.

    Attributes:
        cell: ``"rnn"``, ``"lstm"`` or ``"gru"``.
        relu: the RNN's nonlinearity is ReLU (else tanh).
        states: (T+1, N, H) the hidden states h_0 ... h_T.
        cells: (T+1, N, H) the LSTM cell states c_0 ... c_T (None for RNN and GRU).
        saved: (T, N, 4H) LSTM gates or GRU (r, z, n, hw_n + b_hn) (None for RNN).
    """

    cell: str
    relu: bool
    states: Any
    cells: Any
    saved: Any


@dataclass
class SequenceGradients:
    """The gradients a backward pass over a sequence produces.

    Attributes:
        xw: (T, N, G*H) gradient of the input projections; the caller turns it into the
            gradients of ``weight_ih`` (``X^T @ xw``, one GEMM) and of the input.
        weight_hh: (H, G*H).
        b_ih, b_hh: (G*H,) the bias gradients (the same array for RNN and LSTM).
        h0: (N, H) gradient of the initial hidden state.
        c0: (N, H) gradient of the initial cell state (LSTM), else None.
    """

    xw: Any
    weight_hh: Any
    b_ih: Any
    b_hh: Any
    h0: Any
    c0: Any


def sequence_forward(
    cell: str,
    xw: Any,
    weight_hh: Any,
    b_ih: Any,
    b_hh: Any,
    h0: Any,
    c0: Any = None,
    relu: bool = False,
) -> SequenceCache:
    """Run a cell over all time steps.

    Args:
        cell: ``"rnn"``, ``"lstm"`` or ``"gru"``.
        xw: (T, N, G*H) input projections, ``x_t @ weight_ih`` for every t, or a
            ``Projection`` that computes them.
        weight_hh: (H, G*H).
        b_ih, b_hh: (G*H,) the biases (zeros for a layer without bias).
        h0: (N, H) initial hidden state.
        c0: (N, H) initial cell state (LSTM only).
        relu: ReLU instead of tanh (RNN only; default False).

    Returns:
        A ``SequenceCache``; ``cache.states[1:]`` are the outputs h_1 ... h_T.
    """
    xp = namespace(weight_hh, h0)
    kernel = backend.kernel(f"{cell}_cell_forward", xp)
    if kernel is None:
        return _forward_reference(cell, xw, weight_hh, b_ih, b_hh, h0, c0, relu)
    steps, n_batch, width = xw.shape
    hidden = weight_hh.shape[0]
    states = xp.empty((steps + 1, n_batch, hidden), dtype=xw.dtype)
    states[0, ...] = h0
    cell_states, saved = None, None
    if cell == "lstm":
        cell_states = xp.empty((steps + 1, n_batch, hidden), dtype=xw.dtype)
        cell_states[0, ...] = c0
    if cell != "rnn":
        saved = xp.empty((steps, n_batch, 4 * hidden), dtype=xw.dtype)

    def steps_of(rows: slice) -> None:
        _forward_steps(
            kernel, cell, xw, weight_hh, b_ih, b_hh, states, cell_states, saved, relu, rows
        )

    _over_rows(xp, f"{cell}_cell_forward", n_batch, hidden, steps_of)
    return SequenceCache(cell, relu, states, cell_states, saved)


def _over_rows(xp: Any, op: str, n_batch: int, hidden: int, task: Callable[[slice], None]) -> None:
    """``task(rows)`` over the batch: in shares of rows where the kernels run them
    (``sequence_rows``), else as one."""
    runner = backend.kernel("sequence_rows", xp)
    if runner is None:
        task(slice(0, n_batch))
    else:
        runner(op, n_batch, hidden, task)


def _forward_steps(kernel, cell, xw, weight_hh, b_ih, b_hh, states, cell_states, saved, relu, rows):
    # this share's rows of every step: h[t] is (rows, H), a C-contiguous view
    h = states[:, rows, ...]
    c = None if cell_states is None else cell_states[:, rows, ...]
    kept = None if saved is None else saved[:, rows, ...]
    for start in range(0, xw.shape[0], CHUNK):
        chunk = xw[start : start + CHUNK, rows]  # a view, or a Projection's GEMM made now
        for i in range(chunk.shape[0]):
            t = start + i
            hw = h[t] @ weight_hh
            if cell == "rnn":
                kernel(chunk[i], hw, b_ih, b_hh, h[t + 1], relu)
            elif cell == "lstm":
                kernel(chunk[i], hw, b_ih, b_hh, c[t], h[t + 1], c[t + 1], kept[t])
            else:
                kernel(chunk[i], hw, b_ih, b_hh, h[t], h[t + 1], kept[t])


def _forward_reference(cell, xw, weight_hh, b_ih, b_hh, h0, c0, relu) -> SequenceCache:
    xw = xw[0 : xw.shape[0]]  # a Projection computed here, all steps at once
    xp = namespace(xw, weight_hh, h0)
    states, cell_states, saved = [h0], [c0], []
    for t in range(xw.shape[0]):
        hw = states[-1] @ weight_hh
        if cell == "rnn":
            states.append(cells.rnn_cell_forward_reference(xw[t, ...], hw, b_ih, b_hh, relu))
            continue
        if cell == "lstm":
            h, c, kept = cells.lstm_cell_forward_reference(
                xw[t, ...], hw, b_ih, b_hh, cell_states[-1]
            )
            cell_states.append(c)
        else:
            h, kept = cells.gru_cell_forward_reference(xw[t, ...], hw, b_ih, b_hh, states[-1])
        states.append(h)
        saved.append(kept)
    return SequenceCache(
        cell,
        relu,
        xp.stack(states),
        xp.stack(cell_states) if cell == "lstm" else None,
        xp.stack(saved) if saved else None,
    )


def sequence_backward(
    cache: SequenceCache,
    weight_hh: Any,
    grad_states: Any = None,
    grad_h_last: Any = None,
    grad_c_last: Any = None,
) -> SequenceGradients:
    """Backpropagate through every step of a ``sequence_forward``.

    Args:
        cache: what the forward pass returned.
        weight_hh: (H, G*H), the weight the forward pass used.
        grad_states: (T, N, H) loss gradients of the outputs h_1 ... h_T, or None.
        grad_h_last: (N, H) extra gradient of h_T (a returned state), or None.
        grad_c_last: (N, H) gradient of c_T (LSTM), or None.

    Returns:
        The ``SequenceGradients``.
    """
    states = cache.states
    xp = namespace(states, weight_hh)
    steps, n_batch, hidden = states.shape[0] - 1, states.shape[1], states.shape[2]
    zeros = xp.zeros((n_batch, hidden), dtype=states.dtype)
    dh_rec = zeros if grad_h_last is None else grad_h_last
    carry = None
    if cache.cell == "lstm":
        carry = zeros if grad_c_last is None else grad_c_last
    elif cache.cell == "gru":
        carry = zeros
    kernel = backend.kernel(f"{cache.cell}_cell_backward", xp)
    if kernel is None:
        d_xw, d_hw, grad_h0, carry = _backward_reference(
            cache, weight_hh, grad_states, dh_rec, carry, zeros
        )
    else:
        d_xw, d_hw, grad_h0, carry = _backward_fused(
            kernel, cache, weight_hh, grad_states, dh_rec, carry, zeros
        )
    width = d_hw.shape[2]
    previous = xp.reshape(states[:-1, ...], (steps * n_batch, hidden))
    # (d_hw^T @ H_prev)^T rather than H_prev^T @ d_hw: the same product, which OpenBLAS
    # runs 1.25x faster in this orientation at W3's shape (128 x 3200 @ 3200 x 512: 6.2
    # against 7.9 ms on 2 cores) and no slower at the other sizes measured.
    d_flat = xp.reshape(d_hw, (steps * n_batch, width))
    grad_weight_hh = _contiguous(xp.matrix_transpose(matmul(xp.matrix_transpose(d_flat), previous)))
    # Column sums as a GEMV with ones: 0.21 against 0.57 ms for NumPy's sum over the
    # (3200, 512) gradient of W3 (a threaded BLAS pass instead of a strided reduction).
    ones = xp.ones((steps * n_batch,), dtype=d_flat.dtype)
    grad_b_hh = ones @ d_flat
    grad_b_ih = grad_b_hh if d_hw is d_xw else ones @ xp.reshape(d_xw, (steps * n_batch, width))
    if cache.cell == "gru":
        grad_h0 = grad_h0 + carry
    grad_c0 = carry if cache.cell == "lstm" else None
    return SequenceGradients(d_xw, grad_weight_hh, grad_b_ih, grad_b_hh, grad_h0, grad_c0)


def _backward_fused(kernel, cache, weight_hh, grad_states, dh_rec, carry, zeros) -> tuple:
    xp = namespace(cache.states, weight_hh)
    states, steps = cache.states, cache.states.shape[0] - 1
    width = weight_hh.shape[1]
    shape = (steps, states.shape[1], width)
    d_xw = xp.empty(shape, dtype=states.dtype)
    d_hw = d_xw if cache.cell != "gru" else xp.empty(shape, dtype=states.dtype)
    if carry is not None:
        carry = xp.asarray(carry, copy=True)  # the kernels overwrite it step by step
    if grad_states is not None:
        grad_states = _contiguous(grad_states)
    weight_t = weight_hh.T
    grad_h0 = xp.empty(states.shape[1:], dtype=states.dtype)

    def steps_of(rows: slice) -> None:
        # this share's rows of every step (C-contiguous views); the kernels write ``part``,
        # its rows of ``carry``, in place
        h, d_x, d_h = states[:, rows, ...], d_xw[:, rows, ...], d_hw[:, rows, ...]
        grad = None if grad_states is None else grad_states[:, rows, ...]
        part = None if carry is None else carry[rows, ...]
        cs = None if cache.cells is None else cache.cells[:, rows, ...]
        kept = None if cache.saved is None else cache.saved[:, rows, ...]
        dh, no_grad = dh_rec[rows, ...], zeros[rows, ...]
        for t in range(steps - 1, -1, -1):
            grad_h = no_grad if grad is None else grad[t]
            if cache.cell == "rnn":
                kernel(grad_h, dh, h[t + 1], d_x[t], cache.relu)
            elif cache.cell == "lstm":
                kernel(grad_h, dh, part, cs[t], cs[t + 1], kept[t], d_x[t])
            else:
                kernel(grad_h, dh, part, h[t], kept[t], d_x[t], d_h[t])
            dh = d_h[t] @ weight_t
        grad_h0[rows, ...] = dh

    _over_rows(xp, f"{cache.cell}_cell_backward", states.shape[1], states.shape[2], steps_of)
    return d_xw, d_hw, grad_h0, carry


def _backward_reference(cache, weight_hh, grad_states, dh_rec, carry, zeros) -> tuple:
    xp = namespace(cache.states, weight_hh)
    states, steps = cache.states, cache.states.shape[0] - 1
    d_xws, d_hws = [], []
    weight_t = weight_hh.T
    for t in range(steps - 1, -1, -1):
        grad_h = zeros if grad_states is None else grad_states[t, ...]
        if cache.cell == "rnn":
            d_xw = cells.rnn_cell_backward_reference(grad_h, dh_rec, states[t + 1, ...], cache.relu)
            d_hw = d_xw
        elif cache.cell == "lstm":
            cs = cache.cells
            d_xw, carry = cells.lstm_cell_backward_reference(
                grad_h, dh_rec, carry, cs[t, ...], cs[t + 1, ...], cache.saved[t, ...]
            )
            d_hw = d_xw
        else:
            d_xw, d_hw, carry = cells.gru_cell_backward_reference(
                grad_h, dh_rec, carry, states[t, ...], cache.saved[t, ...]
            )
        d_xws.append(d_xw)
        d_hws.append(d_hw)
        dh_rec = d_hw @ weight_t
    d_xw = xp.stack(d_xws[::-1])
    d_hw = d_xw if cache.cell != "gru" else xp.stack(d_hws[::-1])
    return d_xw, d_hw, dh_rec, carry


def _contiguous(x: Any) -> Any:
    """A C-contiguous version of x (flattening forces the copy only where needed)."""
    xp = namespace(x)
    return xp.reshape(xp.reshape(x, (-1,)), x.shape)
