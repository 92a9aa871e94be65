"""Backpropagation through time: a recurrent cell run over a whole sequence and back.

The caller computes the input projections of every step, ``xw = x @ weight_ih``, in one
GEMM, time-major (T, N, G*H). The forward pass then runs the recurrence h_t =
cell(xw_t, h_{t-1} @ weight_hh) over all steps, and the backward pass runs it in reverse,
turning the gradients of the states into the gradients of the gate pre-activations. What
differs between cell kinds comes from their ``CellSpec`` (``gpunet.ops.recurrent``).

Where the kernels have the spec's sequence ops (NumPy, CuPy), each pass is ONE kernel
call, the loop over the steps inside compiled code (a fixed number of launches on CUDA);
the passes write into preallocated (T+1, N, H) state and (T, N, ...) gate buffers.
Otherwise (array-api-strict, and ``GPUNET_KERNELS=0``) the steps run the spec's
array-API reference one by one; both paths give the same numbers.

The weight gradients are then one GEMM over all steps: the rows [1, x_t, h_{t-1}] of
every step and batch row, stacked (T*N, 1+I+H) and transposed, times the (T*N, G*H)
gradients of the pre-activations give the bias, ``weight_ih`` and ``weight_hh``
gradients in one product (one per weight for a spec with ``separate_hw_grad``): one pass
over the gradients, and one hand-off to gpunet's threads rather than four.
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
    """

    spec: CellSpec
    states: Any
    cells: Any
    saved: Any


@dataclass
class SequenceGradients:
    """The gradients a backward pass over a sequence produces.

    Attributes:
        xw: (T, N, G*H) gradient of the input projections; the caller turns it into the
            gradient of the input (``xw @ weight_ih^T``).
        weight_ih: (I, G*H), or None when ``sequence_backward`` was given no inputs.
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
    spec: CellSpec, xw: Any, weight_hh: Any, b_ih: Any, b_hh: Any, h0: Any, c0: Any = None
) -> SequenceCache:
    """Run a cell over all time steps.

    Args:
        spec: the cell kind.
        xw: (T, N, G*H) input projections, ``x_t @ weight_ih`` for every t.
        weight_hh: (H, G*H).
        b_ih, b_hh: (G*H,) the biases (zeros for a layer without bias).
        h0: (N, H) initial hidden state.
        c0: (N, H) initial cell state (cells with a cell state only; default None).

    Returns:
        A ``SequenceCache``; ``cache.states[1:]`` are the outputs h_1 ... h_T.
    """
    xp = namespace(xw, weight_hh, h0)
    kernel = backend.kernel(spec.forward_op, xp)
    if kernel is None:
        return _forward_reference(spec, xw, weight_hh, b_ih, b_hh, h0, c0)
    steps, n_batch, _ = xw.shape
    hidden = weight_hh.shape[0]
    states = xp.empty((steps + 1, n_batch, hidden), dtype=xw.dtype)
    states[0, ...] = h0
    cells = saved = None
    if spec.cell_state:
        cells = xp.empty((steps + 1, n_batch, hidden), dtype=xw.dtype)
        cells[0, ...] = c0
    if spec.saved:
        saved = xp.empty((steps, n_batch, spec.saved * hidden), dtype=xw.dtype)
    kernel(xw, weight_hh, b_ih, b_hh, states, cells, saved)
    return SequenceCache(spec, states, cells, saved)


def _forward_reference(spec, xw, weight_hh, b_ih, b_hh, h0, c0) -> SequenceCache:
    xp = namespace(xw, weight_hh, h0)
    states, cells, saved = [h0], [c0], []
    for t in range(xw.shape[0]):
        h, c, kept = spec.forward(
            xw[t, ...], states[-1] @ weight_hh, b_ih, b_hh, states[-1], cells[-1]
        )
        states.append(h)
        cells.append(c)
        saved.append(kept)
    return SequenceCache(
        spec,
        xp.stack(states),
        xp.stack(cells) if spec.cell_state else None,
        xp.stack(saved) if spec.saved else None,
    )


def sequence_backward(
    cache: SequenceCache,
    weight_hh: Any,
    grad_states: Any = None,
    grad_h_last: Any = None,
    grad_c_last: Any = None,
    inputs: Any = None,
) -> SequenceGradients:
    """Backpropagate through every step of a ``sequence_forward``.

    Args:
        cache: what the forward pass returned.
        weight_hh: (H, G*H), the weight the forward pass used.
        grad_states: (T, N, H) loss gradients of the outputs h_1 ... h_T, or None.
        grad_h_last: (N, H) extra gradient of h_T (a returned state), or None.
        grad_c_last: (N, H) gradient of c_T (cells with a cell state), or None.
        inputs: (T*N, I) the time-major inputs whose product with ``weight_ih`` gave
            ``xw``: with them, ``weight_ih``'s gradient comes from the same GEMM as the
            others (default None: no ``weight_ih`` gradient).

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
    previous = xp.reshape(states[:-1, ...], (steps * n_batch, hidden))
    weights = weight_gradients(xp, inputs, previous, d_xw, d_hw, spec.separate_hw_grad)
    return SequenceGradients(d_xw, *weights, dh, dc)


def weight_gradients(
    xp: Any, inputs: Any, previous: Any, d_xw: Any, d_hw: Any, separate: bool
) -> tuple[Any, Any, Any, Any]:
    """The (weight_ih, weight_hh, b_ih, b_hh) gradients from the stacked rows [1, x, h]
    (module docstring); ``weight_ih``'s is None without ``inputs``."""
    rows = previous.shape[0]
    ones = xp.ones((rows, 1), dtype=previous.dtype)
    d_xw = xp.reshape(d_xw, (rows, d_xw.shape[-1]))
    features = 0 if inputs is None else inputs.shape[1]

    def product(blocks: list[Any], grad: Any) -> Any:
        return matmul(xp.matrix_transpose(xp.concat(blocks, axis=1)), grad)

    if not separate:
        blocks = [ones, previous] if inputs is None else [ones, inputs, previous]
        both = product(blocks, d_xw)
        grad_weight_ih = None if inputs is None else both[1 : 1 + features, ...]
        return grad_weight_ih, both[1 + features :, ...], both[0, ...], both[0, ...]
    recurrent = product([ones, previous], xp.reshape(d_hw, (rows, d_hw.shape[-1])))
    direct = product([ones] if inputs is None else [ones, inputs], d_xw)
    grad_weight_ih = None if inputs is None else direct[1:, ...]
    return grad_weight_ih, recurrent[1:, ...], direct[0, ...], recurrent[0, ...]


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
