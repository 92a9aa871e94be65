"""Backpropagation through time: a recurrent cell run over a whole sequence and back.

The forward pass runs the recurrence h_t = cell(x_t @ weight_ih, h_{t-1} @ weight_hh)
over the time-major inputs x (T, N, I), and the backward pass runs it in reverse,
turning the gradients of the states into the gradients of the gate pre-activations. What
differs between cell kinds comes from their ``CellSpec`` (``gpunet.ops.recurrent``).

Where the kernels have the spec's sequence ops (NumPy, CuPy), each pass is ONE kernel
call, the loop over the steps inside compiled code (a fixed number of launches on CUDA);
the passes write into preallocated (T+1, N, H) state and (T, N, ...) gate buffers.
Otherwise (array-api-strict, and ``GPUNET_KERNELS=0``) the input projections of all
steps are one GEMM and the steps run the spec's array-API reference one by one; both
paths give the same numbers.

Either way the forward pass also keeps the rows [1, x_t, h_{t-1}] of every step and
batch row, (T, N, 1+I+H) (the CPU kernels multiply them by the stacked weights in each
step, so they come for free). The weight gradients are then one GEMM over all steps:
those rows, as (T*N, 1+I+H) transposed, times the (T*N, G*H) gradients of the
pre-activations give the bias, ``weight_ih`` and ``weight_hh`` gradients in one product
(one per weight for a spec with ``separate_hw_grad``): one pass over the gradients, and
one hand-off to gpunet's threads rather than four.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gpunet import backend
from gpunet.backend import namespace
from gpunet.ops.linear import matmul
from gpunet.ops.recurrent import CellSpec


@dataclass
class SequenceCache:
    """What a forward pass over a sequence keeps for its backward pass.

    Attributes:
        spec: the cell kind.
        states: (T+1, N, H) the hidden states h_0 ... h_T.
        cells: (T+1, N, H) the cell states c_0 ... c_T (None without a cell state).
        saved: (T, N, spec.saved * H) what each step saved (None when the spec saves
            nothing).
        rows: (T, N, 1+I+H) the rows [1, x_t, h_{t-1}] the weight gradients multiply.
    """

    spec: CellSpec
    states: Any
    cells: Any
    saved: Any
    rows: Any


@dataclass
class SequenceGradients:
    """The gradients a backward pass over a sequence produces.

    Attributes:
        xw: (T, N, G*H) gradient of the input projections; the caller turns it into the
            gradient of the input (``xw @ weight_ih^T``).
        weight_ih: (I, G*H).
        weight_hh: (H, G*H).
        b_ih, b_hh: (G*H,) the bias gradients (the same array unless the spec has
            ``separate_hw_grad``).
        h0: (N, H) gradient of the initial hidden state.
        c0: (N, H) gradient of the initial cell state (None without a cell state).
    """

    xw: Any
    weight_ih: Any
    weight_hh: Any
    b_ih: Any
    b_hh: Any
    h0: Any
    c0: Any


def sequence_forward(
    spec: CellSpec,
    x: Any,
    weight_ih: Any,
    weight_hh: Any,
    b_ih: Any,
    b_hh: Any,
    h0: Any,
    c0: Any = None,
    reuse: SequenceCache | None = None,
) -> SequenceCache:
    """Run a cell over all time steps.

    Args:
        spec: the cell kind.
        x: (T, N, I) the inputs, time-major.
        weight_ih: (I, G*H).
        weight_hh: (H, G*H).
        b_ih, b_hh: (G*H,) the biases (zeros for a layer without bias).
        h0: (N, H) initial hidden state.
        c0: (N, H) initial cell state (cells with a cell state only; default None).
        reuse: a cache the caller is done with, whose internal buffers (``rows`` and
            ``saved``, never the states) this pass overwrites where their shapes and
            dtype match (default None). A layer passes its previous cache: a fresh
            buffer of several MB per call would cost the process page faults whenever
            the allocator has handed the last one back to the system.

    Returns:
        A ``SequenceCache``; ``cache.states[1:]`` are the outputs h_1 ... h_T.
    """
    xp = namespace(x, weight_hh, h0)
    kernel = backend.kernel(spec.forward_op, xp)
    if kernel is None:
        return _forward_reference(spec, x, weight_ih, weight_hh, b_ih, b_hh, h0, c0)
    steps, n_batch, features = x.shape
    hidden = weight_hh.shape[0]
    states = xp.empty((steps + 1, n_batch, hidden), dtype=x.dtype)
    states[0, ...] = h0
    cells = saved = None
    if spec.cell_state:
        cells = xp.empty((steps + 1, n_batch, hidden), dtype=x.dtype)
        cells[0, ...] = c0
    if spec.saved:
        saved = _buffer(xp, reuse and reuse.saved, (steps, n_batch, spec.saved * hidden), x)
    rows = _buffer(xp, reuse and reuse.rows, (steps, n_batch, 1 + features + hidden), x)
    kernel(x, weight_ih, weight_hh, b_ih, b_hh, states, cells, saved, rows)
    return SequenceCache(spec, states, cells, saved, rows)


def _buffer(xp: Any, old: Any, shape: tuple[int, ...], like: Any) -> Any:
    """``old`` where it has this shape and ``like``'s dtype and namespace, else a new one."""
    fits = old is not None and tuple(old.shape) == shape and old.dtype == like.dtype
    if fits and namespace(old) is xp:
        return old
    return xp.empty(shape, dtype=like.dtype)


def _forward_reference(spec, x, weight_ih, weight_hh, b_ih, b_hh, h0, c0) -> SequenceCache:
    xp = namespace(x, weight_hh, h0)
    steps, n_batch, features = x.shape
    xw = matmul(xp.reshape(x, (steps * n_batch, features)), weight_ih)
    xw = xp.reshape(xw, (steps, n_batch, weight_ih.shape[1]))
    states, cells, saved = [h0], [c0], []
    for t in range(steps):
        h, c, kept = spec.forward(
            xw[t, ...], states[-1] @ weight_hh, b_ih, b_hh, states[-1], cells[-1]
        )
        states.append(h)
        cells.append(c)
        saved.append(kept)
    states = xp.stack(states)
    ones = xp.ones((steps, n_batch, 1), dtype=x.dtype)
    return SequenceCache(
        spec,
        states,
        xp.stack(cells) if spec.cell_state else None,
        xp.stack(saved) if spec.saved else None,
        xp.concat([ones, x, states[:-1, ...]], axis=2),
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
        grad_c_last: (N, H) gradient of c_T (cells with a cell state), or None.

    Returns:
        The ``SequenceGradients``.
    """
    spec, states = cache.spec, cache.states
    xp = namespace(states, weight_hh)
    steps, n_batch, hidden = states.shape[0] - 1, states.shape[1], states.shape[2]
    dh = _start(xp, grad_h_last, (n_batch, hidden), states.dtype)
    dc = _start(xp, grad_c_last, (n_batch, hidden), states.dtype) if spec.cell_state else None
    kernel = backend.kernel(spec.backward_op, xp)
    if kernel is None:
        d_xw, d_hw, dh, dc = _backward_reference(cache, weight_hh, grad_states, dh, dc)
    else:
        d_xw = xp.empty((steps, n_batch, weight_hh.shape[1]), dtype=states.dtype)
        d_hw = xp.empty_like(d_xw) if spec.separate_hw_grad else d_xw
        kernel(weight_hh, states, cache.cells, cache.saved, grad_states, dh, dc, d_xw, d_hw)
    weights = weight_gradients(xp, cache.rows, hidden, d_xw, d_hw, spec.separate_hw_grad)
    return SequenceGradients(d_xw, *weights, dh, dc)


def weight_gradients(
    xp: Any, rows: Any, hidden: int, d_xw: Any, d_hw: Any, separate: bool
) -> tuple[Any, Any, Any, Any]:
    """The (weight_ih, weight_hh, b_ih, b_hh) gradients from the rows [1, x, h] (T, N,
    1+I+H) and the gradients of the pre-activations (module docstring)."""
    steps, n_batch, width = rows.shape
    rows = xp.reshape(rows, (steps * n_batch, width))
    d_xw = xp.reshape(d_xw, (steps * n_batch, d_xw.shape[-1]))
    split = width - hidden  # the columns [1, x] come first, h after

    def product(blocks: Any, grad: Any) -> Any:
        return matmul(xp.matrix_transpose(blocks), grad)

    if not separate:
        both = product(rows, d_xw)
        return both[1:split, ...], both[split:, ...], both[0, ...], both[0, ...]
    recurrent = product(rows, xp.reshape(d_hw, (steps * n_batch, d_hw.shape[-1])))
    direct = product(rows[:, :split], d_xw)
    return direct[1:, ...], recurrent[split:, ...], direct[0, ...], recurrent[0, ...]


def _start(xp: Any, grad: Any, shape: tuple[int, int], dtype: Any) -> Any:
    """A fresh array holding ``grad`` (zeros for None), which the kernels overwrite."""
    if grad is None:
        return xp.zeros(shape, dtype=dtype)
    return xp.asarray(grad, dtype=dtype, copy=True)


def _backward_reference(cache, weight_hh, grad_states, dh, dc) -> tuple:
    spec, states, cells = cache.spec, cache.states, cache.cells
    xp = namespace(states, weight_hh)
    weight_t = xp.matrix_transpose(weight_hh)
    d_xws, d_hws = [], []
    for t in range(states.shape[0] - 2, -1, -1):
        if grad_states is not None:
            dh = dh + grad_states[t, ...]
        d_xw, d_hw, direct, dc = spec.backward(
            dh,
            dc,
            states[t, ...],
            None if cells is None else cells[t, ...],
            states[t + 1, ...],
            None if cells is None else cells[t + 1, ...],
            None if cache.saved is None else cache.saved[t, ...],
        )
        d_xws.append(d_xw)
        d_hws.append(d_hw)
        dh = d_hw @ weight_t if direct is None else d_hw @ weight_t + direct
    d_xw = xp.stack(d_xws[::-1])
    d_hw = xp.stack(d_hws[::-1]) if spec.separate_hw_grad else d_xw
    return d_xw, d_hw, dh, dc
