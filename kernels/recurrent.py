"""Fused recurrent cells: the pointwise math of one time step in one pass.

A recurrent step is one GEMM ``h_prev @ weight_hh`` (done by the array library) followed
by the gate nonlinearities, cell update and new hidden state, which this module fuses
into one kernel that reads each input once and writes each output once. Backward is the
mirror image: one kernel per step turns the gradient arriving at ``h_t`` (and ``c_t``)
into the gradients of the gate pre-activations, which the caller feeds to GEMMs.

The math of one element is written once, as ``@njit(inline="always")`` scalar helpers
returning tuples, and called from a CPU kernel (``@njit(parallel=True, cache=True)``,
prange over the batch rows, each row's hidden units in a plain loop) and a CUDA kernel
(``@cuda.jit``, one thread per (row, unit) element). Their ``sigmoid_scalar`` and
``tanh_scalar`` compile, per target and type, to the exact exp-based forms (float64, and
everything on CUDA) or to a float32 form built from multiplies and adds that LLVM
vectorises on the CPU.
``gpunet/ops/recurrent.py`` holds the pure array-API reference of the same math, which
is the test oracle.

Arguments of every kernel (all C-contiguous, one float dtype; ``H`` hidden units, ``G``
gates: RNN 1, LSTM 4 in the order i, f, g, o, GRU 3 in the order r, z, n):

* forward: ``xw`` (N, G*H) the input projection ``x_t @ weight_ih``, ``hw`` (N, G*H)
  the recurrent projection ``h_prev @ weight_hh``, the biases ``b_ih`` and ``b_hh``
  (G*H,), the previous state, then the outputs. LSTM saves its activated gates
  (N, 4H); GRU saves r, z, n and ``h_prev @ W_hn + b_hn`` (N, 4H), which its backward
  needs.
* backward: ``grad_h`` (N, H) the gradient of the loss with respect to ``h_t`` from the
  layer's output, ``dh_rec`` (N, H) the gradient arriving through the next step's GEMM,
  what the forward saved, then the outputs. LSTM's ``dc`` and GRU's ``carry`` (the
  direct path ``h_prev -> h_t``) are read and overwritten in place with the gradient
  for the previous step.

``<op>_cpu`` take NumPy arrays, ``<op>_cuda`` CuPy arrays (launched on CuPy's current
stream); ``launch_<op>`` run the CUDA kernel on any arrays the CUDA target accepts, so
the simulator can test it on NumPy arrays.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import cuda, njit
from numba.core import types
from numba.extending import intrinsic, overload

from . import _parallel
from ._cuda import current_stream, device_arrays
from ._jit import cpu_kernel

_THREADS = 256

# error_model="numpy": no division-by-zero checks. fastmath "contract" only: multiplies
# and adds may fuse into FMAs (the LSTM cell 30% faster), while reassociation, which
# would undo exp's rounding trick, and the no-NaN/no-inf assumptions stay off.
_CPU_OPTIONS = {"error_model": "numpy", "fastmath": {"contract"}}

OPS = (
    "rnn_cell_forward",
    "rnn_cell_backward",
    "lstm_cell_forward",
    "lstm_cell_backward",
    "gru_cell_forward",
    "gru_cell_backward",
)


# --------------------------------------------------------------------------- scalar math


@njit(inline="always")
def _sigmoid_exact(x):
    """1 / (1 + exp(-x)), from exp(-|x|) so that it never overflows.

    Both halves are computed and one selected, so there is no branch to mispredict.
    """
    e = math.exp(-abs(x))
    r = 1.0 / (1.0 + e)
    return r if x >= 0 else e * r


@njit(inline="always")
def _tanh_exact(x):
    """tanh(x) from one exp(-2|x|), which never overflows; about 4x cheaper than the
    libm tanh. A short series near 0 keeps the relative error at rounding level."""
    a = abs(x)
    if a < 0.004:
        x2 = x * x
        return x * (1.0 - x2 * (1.0 / 3.0 - x2 * (2.0 / 15.0)))
    t = math.exp(-2.0 * a)
    y = (1.0 - t) / (1.0 + t)
    return y if x >= 0 else -y


# float32 on the CPU: exp, tanh and sigmoid from multiplies and adds only, so that LLVM
# vectorises the cell loops (8 lanes with AVX2); a call to libm's exp keeps a loop
# scalar. exp(x) = 2^k * e^r with k = round(x / ln 2) and |r| <= ln(2) / 2, 2^k written
# straight into the exponent bits and e^r - 1 = q(r) by its Taylor series to r^7
# (truncation below 5e-9), so that exp(x) = 2^k q + 2^k and exp(x) - 1 = 2^k q + (2^k - 1)
# keep full relative accuracy near 0: tanh(x) = -m / (2 + m) with m = exp(-2|x|) - 1
# needs no series near 0. Relative error against float64: tanh 2.0e-7, sigmoid 1.4e-7
# (float32 rounding is 6e-8). On 40960 values: tanh 1.83 ns a value, against 2.7 for the
# earlier form (a series below 0.3 and (1 - t) / (1 + t) above), itself 2.8x faster than
# libm's.
_f32 = np.float32
_LOG2E = _f32(1.4426950408889634)
_LN2_HI, _LN2_LO = _f32(0.693359375), _f32(-2.12194440e-4)  # hi + lo = ln 2, hi exact
_ROUND = _f32(1.5 * 2**23)  # adding and subtracting it rounds to an integer
_EXP_MIN, _EXP_MAX = _f32(-87.0), _f32(88.0)  # 2^k stays a normal float32
_ZERO, _ONE, _TWO = _f32(0.0), _f32(1.0), _f32(2.0)
_INV_FACTORIAL = tuple(_f32(1.0 / math.factorial(n)) for n in range(8))
_F2, _F3, _F4, _F5, _F6, _F7 = _INV_FACTORIAL[2:]


@intrinsic
def _float32_from_bits(typingctx, bits):
    """The float32 whose bit pattern is the int32 ``bits``."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float32))

    return types.float32(types.int32), codegen


@njit(inline="always")
def _exp_parts_f32(x):
    """(2^k, q) with exp(x) = 2^k (1 + q), x clamped to where 2^k is a normal float32."""
    x = min(max(x, _EXP_MIN), _EXP_MAX)
    k = (x * _LOG2E + _ROUND) - _ROUND
    r = (x - k * _LN2_HI) - k * _LN2_LO
    q = r * (_ONE + r * (_F2 + r * (_F3 + r * (_F4 + r * (_F5 + r * (_F6 + r * _F7))))))
    return _float32_from_bits((numba.int32(k) + numba.int32(127)) << numba.int32(23)), q


@njit(inline="always")
def _exp_f32(x):
    scale, q = _exp_parts_f32(x)
    return scale * q + scale


@njit(inline="always")
def _tanh_f32(x):
    scale, q = _exp_parts_f32(-_TWO * abs(x))
    m = scale * q + (scale - _ONE)  # exp(-2|x|) - 1, in [-1, 0]
    y = -m / (_TWO + m)
    return y if x >= 0 else -y


@njit(inline="always")
def _sigmoid_f32(x):
    return _ONE / (_ONE + _exp_f32(-x))


def sigmoid_scalar(x):
    """1 / (1 + exp(-x)), never overflowing. In compiled code: the vectorisable float32
    form on the CPU for float32, the exact form otherwise (and on CUDA)."""
    return _sigmoid_exact.py_func(x)


def tanh_scalar(x):
    """tanh(x), never overflowing; compiled forms chosen as for ``sigmoid_scalar``."""
    return _tanh_exact.py_func(x)


@overload(sigmoid_scalar, target="cpu", jit_options=_CPU_OPTIONS)
def _sigmoid_cpu(x):
    if x == types.float32:
        return lambda x: _sigmoid_f32(x)
    return lambda x: _sigmoid_exact(x)


@overload(tanh_scalar, target="cpu", jit_options=_CPU_OPTIONS)
def _tanh_cpu(x):
    if x == types.float32:
        return lambda x: _tanh_f32(x)
    return lambda x: _tanh_exact(x)


@overload(sigmoid_scalar, target="cuda")
def _sigmoid_cuda(x):
    return lambda x: _sigmoid_exact(x)


@overload(tanh_scalar, target="cuda")
def _tanh_cuda(x):
    return lambda x: _tanh_exact(x)


@njit(inline="always")
def rnn_forward_point(pre, relu):
    """h = tanh(pre) or max(pre, 0)."""
    if relu:  # not max(): numba 0.66's built-in CUDA target cannot compile it (#10753)
        return _ZERO if pre < _ZERO else pre  # NaN stays NaN, as with max(pre, 0)
    return tanh_scalar(pre)


@njit(inline="always")
def rnn_backward_point(dh, h, relu):
    """d pre from d h, using the output h only."""
    if relu:
        return dh if h > 0 else 0.0 * dh
    return dh * (_ONE - h * h)


@njit(inline="always")
def lstm_forward_point(pre_i, pre_f, pre_g, pre_o, c_prev):
    """Returns (i, f, g, o, c, h): c = f c_prev + i g, h = o tanh(c)."""
    i = sigmoid_scalar(pre_i)
    f = sigmoid_scalar(pre_f)
    g = tanh_scalar(pre_g)
    o = sigmoid_scalar(pre_o)
    c = f * c_prev + i * g
    return i, f, g, o, c, o * tanh_scalar(c)


@njit(inline="always")
def lstm_backward_point(dh, dc, c_prev, c, i, f, g, o):
    """Returns (d pre_i, d pre_f, d pre_g, d pre_o, d c_prev)."""
    # _ONE is a float32 1: exact, and it keeps float32 math in float32 (a literal 1.0
    # would promote every product to float64 and halve the vector width)
    tanh_c = tanh_scalar(c)
    dc_total = dc + dh * o * (_ONE - tanh_c * tanh_c)
    d_i = dc_total * g * i * (_ONE - i)
    d_f = dc_total * c_prev * f * (_ONE - f)
    d_g = dc_total * i * (_ONE - g * g)
    d_o = dh * tanh_c * o * (_ONE - o)
    return d_i, d_f, d_g, d_o, dc_total * f


@njit(inline="always")
def gru_forward_point(pre_r, pre_z, x_n, h_n, h_prev):
    """Returns (r, z, n, h): n = tanh(x_n + r h_n), h = (1 - z) n + z h_prev."""
    r = sigmoid_scalar(pre_r)
    z = sigmoid_scalar(pre_z)
    n = tanh_scalar(x_n + r * h_n)
    return r, z, n, (_ONE - z) * n + z * h_prev


@njit(inline="always")
def gru_backward_point(dh, h_prev, r, z, n, h_n):
    """Returns (d pre_r, d pre_z, d x_n, d h_n, d h_prev through the z path)."""
    d_n = dh * (_ONE - z) * (_ONE - n * n)
    d_z = dh * (h_prev - n) * z * (_ONE - z)
    d_r = d_n * h_n * r * (_ONE - r)
    return d_r, d_z, d_n, d_n * r, dh * z


# --------------------------------------------------------------------------- CPU kernels


@njit(inline="always")
def _rnn_forward_row(xw, hw, b_ih, b_hh, h_out, relu, n):
    for j in range(h_out.shape[1]):
        h_out[n, j] = rnn_forward_point(xw[n, j] + b_ih[j] + hw[n, j] + b_hh[j], relu)


@njit(inline="always")
def _rnn_backward_row(grad_h, dh_rec, h, d_pre, relu, n):
    for j in range(h.shape[1]):
        d_pre[n, j] = rnn_backward_point(grad_h[n, j] + dh_rec[n, j], h[n, j], relu)


# Serial builds of the RNN cells, for the calls that run on one thread: they skip the
# parallel launch (batch 64 x 128 units: forward 22.0 against 23.3 us, backward 3.1
# against 5.1 us with Numba's omp layer; 22 against 62 and 3.2 against 49 us with its
# workqueue layer, which wakes a worker even for one thread) and still vectorise. They
# are functions of their own, not the parallel ones compiled again: Numba's disk cache
# keys a function by its bytecode, not its options. Built the same way, the LSTM and
# GRU cells stay scalar (their many arrays need more run-time overlap checks than LLVM
# makes), 4.5x slower; their serial builds are staged (below).
@cpu_kernel(fastmath={"contract"})
def _rnn_forward_cpu_serial(xw, hw, b_ih, b_hh, h_out, relu):
    for n in range(h_out.shape[0]):
        _rnn_forward_row(xw, hw, b_ih, b_hh, h_out, relu, n)


@cpu_kernel(fastmath={"contract"})
def _rnn_backward_cpu_serial(grad_h, dh_rec, h, d_pre, relu):
    for n in range(h.shape[0]):
        _rnn_backward_row(grad_h, dh_rec, h, d_pre, relu, n)


# Staged serial builds of the LSTM and GRU cells, for calls on one thread where Numba's
# threading layer is ``workqueue``: its parallel launch wakes a worker even for one
# thread (~40-50 us) and may not be entered from two threads at once, so shares of batch
# rows run these instead. Each row is copied into scratch arrays made here, whose
# addresses LLVM knows apart, so that the math loop vectorises (built serially without
# the staging, the LSTM forward took 226 against 50 us); the copies are plain loops
# (slice assignments cost ~150 ns each, 2.5x the whole kernel's time). The math per
# element is the parallel builds', the results the same bits.
@cpu_kernel(fastmath={"contract"})
def _lstm_forward_cpu_staged(xw, hw, b_ih, b_hh, c_prev, h_out, c_out, gates):
    n_batch, hidden = c_prev.shape
    pre = np.empty(4 * hidden, dtype=gates.dtype)
    kept = np.empty(4 * hidden, dtype=gates.dtype)
    c_in = np.empty(hidden, dtype=gates.dtype)
    c_new = np.empty(hidden, dtype=gates.dtype)
    h_new = np.empty(hidden, dtype=gates.dtype)
    for n in range(n_batch):
        for k in range(4 * hidden):
            pre[k] = xw[n, k] + b_ih[k] + hw[n, k] + b_hh[k]
        for j in range(hidden):
            c_in[j] = c_prev[n, j]
        for j in range(hidden):
            j1, j2, j3 = j + hidden, j + 2 * hidden, j + 3 * hidden
            i, f, g, o, c, h = lstm_forward_point(pre[j], pre[j1], pre[j2], pre[j3], c_in[j])
            kept[j], kept[j1], kept[j2], kept[j3] = i, f, g, o
            c_new[j], h_new[j] = c, h
        for k in range(4 * hidden):
            gates[n, k] = kept[k]
        for j in range(hidden):
            c_out[n, j], h_out[n, j] = c_new[j], h_new[j]


@cpu_kernel(fastmath={"contract"})
def _lstm_backward_cpu_staged(grad_h, dh_rec, dc, c_prev, c, gates, d_pre):
    n_batch, hidden = c.shape
    kept = np.empty(4 * hidden, dtype=d_pre.dtype)
    d_new = np.empty(4 * hidden, dtype=d_pre.dtype)
    dh = np.empty(hidden, dtype=d_pre.dtype)
    dc_in = np.empty(hidden, dtype=d_pre.dtype)
    c0 = np.empty(hidden, dtype=d_pre.dtype)
    c1 = np.empty(hidden, dtype=d_pre.dtype)
    dc_new = np.empty(hidden, dtype=d_pre.dtype)
    for n in range(n_batch):
        for j in range(hidden):
            dh[j] = grad_h[n, j] + dh_rec[n, j]
            dc_in[j], c0[j], c1[j] = dc[n, j], c_prev[n, j], c[n, j]
        for k in range(4 * hidden):
            kept[k] = gates[n, k]
        for j in range(hidden):
            j1, j2, j3 = j + hidden, j + 2 * hidden, j + 3 * hidden
            d_i, d_f, d_g, d_o, dc_prev = lstm_backward_point(
                dh[j], dc_in[j], c0[j], c1[j], kept[j], kept[j1], kept[j2], kept[j3]
            )
            d_new[j], d_new[j1], d_new[j2], d_new[j3] = d_i, d_f, d_g, d_o
            dc_new[j] = dc_prev
        for k in range(4 * hidden):
            d_pre[n, k] = d_new[k]
        for j in range(hidden):
            dc[n, j] = dc_new[j]


@cpu_kernel(fastmath={"contract"})
def _gru_forward_cpu_staged(xw, hw, b_ih, b_hh, h_prev, h_out, saved):
    n_batch, hidden = h_prev.shape
    pre = np.empty(3 * hidden, dtype=saved.dtype)  # r and z pre-activations, then x_n
    kept = np.empty(4 * hidden, dtype=saved.dtype)
    h_n = np.empty(hidden, dtype=saved.dtype)
    previous = np.empty(hidden, dtype=saved.dtype)
    h_new = np.empty(hidden, dtype=saved.dtype)
    for n in range(n_batch):
        for k in range(2 * hidden):
            pre[k] = xw[n, k] + b_ih[k] + hw[n, k] + b_hh[k]
        for j in range(hidden):
            j2 = j + 2 * hidden
            pre[j2] = xw[n, j2] + b_ih[j2]
            h_n[j] = hw[n, j2] + b_hh[j2]
            previous[j] = h_prev[n, j]
        for j in range(hidden):
            j1, j2, j3 = j + hidden, j + 2 * hidden, j + 3 * hidden
            r, z, new_n, h = gru_forward_point(pre[j], pre[j1], pre[j2], h_n[j], previous[j])
            kept[j], kept[j1], kept[j2], kept[j3] = r, z, new_n, h_n[j]
            h_new[j] = h
        for k in range(4 * hidden):
            saved[n, k] = kept[k]
        for j in range(hidden):
            h_out[n, j] = h_new[j]


@cpu_kernel(fastmath={"contract"})
def _gru_backward_cpu_staged(grad_h, dh_rec, carry, h_prev, saved, d_xw, d_hw):
    n_batch, hidden = h_prev.shape
    kept = np.empty(4 * hidden, dtype=d_xw.dtype)
    dx_new = np.empty(3 * hidden, dtype=d_xw.dtype)
    dh_new = np.empty(3 * hidden, dtype=d_xw.dtype)
    dh = np.empty(hidden, dtype=d_xw.dtype)
    previous = np.empty(hidden, dtype=d_xw.dtype)
    carry_new = np.empty(hidden, dtype=d_xw.dtype)
    for n in range(n_batch):
        for j in range(hidden):
            dh[j] = grad_h[n, j] + dh_rec[n, j] + carry[n, j]
            previous[j] = h_prev[n, j]
        for k in range(4 * hidden):
            kept[k] = saved[n, k]
        for j in range(hidden):
            j1, j2, j3 = j + hidden, j + 2 * hidden, j + 3 * hidden
            d_r, d_z, d_xn, d_hn, d_direct = gru_backward_point(
                dh[j], previous[j], kept[j], kept[j1], kept[j2], kept[j3]
            )
            dx_new[j], dx_new[j1], dx_new[j2] = d_r, d_z, d_xn
            dh_new[j], dh_new[j1], dh_new[j2] = d_r, d_z, d_hn
            carry_new[j] = d_direct
        for k in range(3 * hidden):
            d_xw[n, k], d_hw[n, k] = dx_new[k], dh_new[k]
        for j in range(hidden):
            carry[n, j] = carry_new[j]


# --------------------------------------------------------------------------- CUDA kernels


@cuda.jit
def _rnn_forward_cuda_kernel(xw, hw, b_ih, b_hh, h_out, relu):
    n_batch, hidden = h_out.shape
    k = cuda.grid(1)
    if k < n_batch * hidden:
        n, j = k // hidden, k % hidden
        h_out[n, j] = rnn_forward_point(xw[n, j] + b_ih[j] + hw[n, j] + b_hh[j], relu)


@cuda.jit
def _rnn_backward_cuda_kernel(grad_h, dh_rec, h, d_pre, relu):
    n_batch, hidden = h.shape
    k = cuda.grid(1)
    if k < n_batch * hidden:
        n, j = k // hidden, k % hidden
        d_pre[n, j] = rnn_backward_point(grad_h[n, j] + dh_rec[n, j], h[n, j], relu)


@cuda.jit
def _lstm_forward_cuda_kernel(xw, hw, b_ih, b_hh, c_prev, h_out, c_out, gates):
    n_batch, hidden = c_prev.shape
    k = cuda.grid(1)
    if k < n_batch * hidden:
        n, j = k // hidden, k % hidden
        j1, j2, j3 = j + hidden, j + 2 * hidden, j + 3 * hidden
        i, f, g, o, c, h = lstm_forward_point(
            xw[n, j] + b_ih[j] + hw[n, j] + b_hh[j],
            xw[n, j1] + b_ih[j1] + hw[n, j1] + b_hh[j1],
            xw[n, j2] + b_ih[j2] + hw[n, j2] + b_hh[j2],
            xw[n, j3] + b_ih[j3] + hw[n, j3] + b_hh[j3],
            c_prev[n, j],
        )
        gates[n, j] = i
        gates[n, j1] = f
        gates[n, j2] = g
        gates[n, j3] = o
        c_out[n, j] = c
        h_out[n, j] = h


@cuda.jit
def _lstm_backward_cuda_kernel(grad_h, dh_rec, dc, c_prev, c, gates, d_pre):
    n_batch, hidden = c.shape
    k = cuda.grid(1)
    if k < n_batch * hidden:
        n, j = k // hidden, k % hidden
        j1, j2, j3 = j + hidden, j + 2 * hidden, j + 3 * hidden
        d_i, d_f, d_g, d_o, dc_prev = lstm_backward_point(
            grad_h[n, j] + dh_rec[n, j],
            dc[n, j],
            c_prev[n, j],
            c[n, j],
            gates[n, j],
            gates[n, j1],
            gates[n, j2],
            gates[n, j3],
        )
        d_pre[n, j] = d_i
        d_pre[n, j1] = d_f
        d_pre[n, j2] = d_g
        d_pre[n, j3] = d_o
        dc[n, j] = dc_prev


@cuda.jit
def _gru_forward_cuda_kernel(xw, hw, b_ih, b_hh, h_prev, h_out, saved):
    n_batch, hidden = h_prev.shape
    k = cuda.grid(1)
    if k < n_batch * hidden:
        n, j = k // hidden, k % hidden
        j1, j2, j3 = j + hidden, j + 2 * hidden, j + 3 * hidden
        h_n = hw[n, j2] + b_hh[j2]
        r, z, new_n, h = gru_forward_point(
            xw[n, j] + b_ih[j] + hw[n, j] + b_hh[j],
            xw[n, j1] + b_ih[j1] + hw[n, j1] + b_hh[j1],
            xw[n, j2] + b_ih[j2],
            h_n,
            h_prev[n, j],
        )
        saved[n, j] = r
        saved[n, j1] = z
        saved[n, j2] = new_n
        saved[n, j3] = h_n
        h_out[n, j] = h


@cuda.jit
def _gru_backward_cuda_kernel(grad_h, dh_rec, carry, h_prev, saved, d_xw, d_hw):
    n_batch, hidden = h_prev.shape
    k = cuda.grid(1)
    if k < n_batch * hidden:
        n, j = k // hidden, k % hidden
        j1, j2, j3 = j + hidden, j + 2 * hidden, j + 3 * hidden
        d_r, d_z, d_xn, d_hn, d_direct = gru_backward_point(
            grad_h[n, j] + dh_rec[n, j] + carry[n, j],
            h_prev[n, j],
            saved[n, j],
            saved[n, j1],
            saved[n, j2],
            saved[n, j3],
        )
        d_xw[n, j] = d_r
        d_xw[n, j1] = d_z
        d_xw[n, j2] = d_xn
        d_hw[n, j] = d_r
        d_hw[n, j1] = d_z
        d_hw[n, j2] = d_hn
        carry[n, j] = d_direct


# --------------------------------------------------------------------------- wrappers
#
# Every op takes (inputs..., outputs...) and writes the outputs (and LSTM's dc, GRU's
# carry) in place. Inputs are made C-contiguous here so that each kernel compiles for
# exactly two signatures (float32, float64); outputs must be C-contiguous already.

# op -> (CPU kernel, CUDA kernel, number of inputs, position of an (N, H) argument,
#        whether it takes the RNN nonlinearity flag)
_KERNELS = {
    "rnn_cell_forward": (_rnn_forward_cpu_serial, _rnn_forward_cuda_kernel, 4, 4, True),
    "rnn_cell_backward": (_rnn_backward_cpu_serial, _rnn_backward_cuda_kernel, 3, 0, True),
    "lstm_cell_forward": (_lstm_forward_cpu_staged, _lstm_forward_cuda_kernel, 5, 4, False),
    "lstm_cell_backward": (_lstm_backward_cpu_staged, _lstm_backward_cuda_kernel, 6, 0, False),
    "gru_cell_forward": (_gru_forward_cpu_staged, _gru_forward_cuda_kernel, 5, 4, False),
    "gru_cell_backward": (_gru_backward_cpu_staged, _gru_backward_cuda_kernel, 5, 0, False),
}
# batch rows per part, at least, when a sequence's rows are split over gpunet's threads
_ROWS_PER_PART = 8


def _arguments(op, arrays, relu, contiguous):
    n_inputs, takes_flag = _KERNELS[op][2], _KERNELS[op][4]
    inputs = tuple(contiguous(a) for a in arrays[:n_inputs])
    args = inputs + tuple(arrays[n_inputs:])
    return (*args, bool(relu)) if takes_flag else args


def sequence_rows_cpu(op, n_batch, hidden, task):
    """``task(rows)`` for the batch rows of a sequence of ``op`` (one of ``OPS``).

    ``task`` runs every step of the sequence for the rows of the slice it is given; the
    rows are split over gpunet's threads by the rule of ``_parallel``, each part running
    its GEMMs and cells on one thread.
    """
    parts = _parallel.count(n_batch // _ROWS_PER_PART, n_batch * hidden * 64)
    edges = _parallel.bounds(n_batch, parts)
    _parallel.run(parts, lambda part: task(slice(edges[part], edges[part + 1])))


def _run_cpu(op, arrays, relu=False):
    kernel, _, n_inputs, _, takes_flag = _KERNELS[op]
    args = [np.ascontiguousarray(a) for a in arrays[:n_inputs]]
    args.extend(arrays[n_inputs:])
    if takes_flag:
        args.append(bool(relu))
    kernel(*args)


def launch(op, *arrays, relu=False, stream=None):
    """Run the CUDA kernel of ``op`` on any arrays the CUDA target accepts.

    Args:
        op: one of ``OPS``.
        *arrays: the kernel's inputs then outputs, as in the module docstring (and the
            ``<op>_cpu`` functions), all C-contiguous.
        relu: for the RNN ops, ReLU instead of tanh (default False).
        stream: a CUDA stream (default None: the default stream).
    """
    kernel, state_position = _KERNELS[op][1], _KERNELS[op][3]
    n_batch, hidden = arrays[state_position].shape
    blocks = max(1, (n_batch * hidden + _THREADS - 1) // _THREADS)
    args = device_arrays(*_arguments(op, arrays, relu, lambda a: a))
    if stream is None:
        kernel[blocks, _THREADS](*args)
    else:
        kernel[blocks, _THREADS, stream](*args)


def _run_cuda(op, arrays, relu=False):
    import cupy

    stream = current_stream()
    n_inputs = _KERNELS[op][2]
    inputs = tuple(cupy.ascontiguousarray(a) for a in arrays[:n_inputs])
    launch(op, *inputs, *arrays[n_inputs:], relu=relu, stream=stream)


def rnn_cell_forward_cpu(xw, hw, b_ih, b_hh, h_out, relu=False):
    """h_out = tanh(xw + b_ih + hw + b_hh) (ReLU with ``relu=True``), on NumPy arrays."""
    _run_cpu("rnn_cell_forward", (xw, hw, b_ih, b_hh, h_out), relu)


def rnn_cell_backward_cpu(grad_h, dh_rec, h, d_pre, relu=False):
    """d_pre = (grad_h + dh_rec) * (1 - h**2) (or * [h > 0]), on NumPy arrays."""
    _run_cpu("rnn_cell_backward", (grad_h, dh_rec, h, d_pre), relu)


def lstm_cell_forward_cpu(xw, hw, b_ih, b_hh, c_prev, h_out, c_out, gates):
    """One LSTM step's pointwise math, on NumPy arrays."""
    _run_cpu("lstm_cell_forward", (xw, hw, b_ih, b_hh, c_prev, h_out, c_out, gates))


def lstm_cell_backward_cpu(grad_h, dh_rec, dc, c_prev, c, gates, d_pre):
    """One LSTM step's pointwise backward, on NumPy arrays; ``dc`` becomes d c_prev."""
    _run_cpu("lstm_cell_backward", (grad_h, dh_rec, dc, c_prev, c, gates, d_pre))


def gru_cell_forward_cpu(xw, hw, b_ih, b_hh, h_prev, h_out, saved):
    """One GRU step's pointwise math, on NumPy arrays."""
    _run_cpu("gru_cell_forward", (xw, hw, b_ih, b_hh, h_prev, h_out, saved))


def gru_cell_backward_cpu(grad_h, dh_rec, carry, h_prev, saved, d_xw, d_hw):
    """One GRU step's pointwise backward, on NumPy arrays; ``carry`` becomes dh * z."""
    _run_cpu("gru_cell_backward", (grad_h, dh_rec, carry, h_prev, saved, d_xw, d_hw))


def rnn_cell_forward_cuda(xw, hw, b_ih, b_hh, h_out, relu=False):
    """As ``rnn_cell_forward_cpu``, on CuPy arrays, on CuPy's current stream."""
    _run_cuda("rnn_cell_forward", (xw, hw, b_ih, b_hh, h_out), relu)


def rnn_cell_backward_cuda(grad_h, dh_rec, h, d_pre, relu=False):
    """As ``rnn_cell_backward_cpu``, on CuPy arrays, on CuPy's current stream."""
    _run_cuda("rnn_cell_backward", (grad_h, dh_rec, h, d_pre), relu)


def lstm_cell_forward_cuda(xw, hw, b_ih, b_hh, c_prev, h_out, c_out, gates):
    """As ``lstm_cell_forward_cpu``, on CuPy arrays, on CuPy's current stream."""
    _run_cuda("lstm_cell_forward", (xw, hw, b_ih, b_hh, c_prev, h_out, c_out, gates))


def lstm_cell_backward_cuda(grad_h, dh_rec, dc, c_prev, c, gates, d_pre):
    """As ``lstm_cell_backward_cpu``, on CuPy arrays, on CuPy's current stream."""
    _run_cuda("lstm_cell_backward", (grad_h, dh_rec, dc, c_prev, c, gates, d_pre))


def gru_cell_forward_cuda(xw, hw, b_ih, b_hh, h_prev, h_out, saved):
    """As ``gru_cell_forward_cpu``, on CuPy arrays, on CuPy's current stream."""
    _run_cuda("gru_cell_forward", (xw, hw, b_ih, b_hh, h_prev, h_out, saved))


def gru_cell_backward_cuda(grad_h, dh_rec, carry, h_prev, saved, d_xw, d_hw):
    """As ``gru_cell_backward_cpu``, on CuPy arrays, on CuPy's current stream."""
    _run_cuda("gru_cell_backward", (grad_h, dh_rec, carry, h_prev, saved, d_xw, d_hw))
