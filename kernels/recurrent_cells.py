"""The pointwise math of one recurrent step, written once for the CPU and CUDA kernels.

Each cell's forward and backward for one (batch row, hidden unit) element is an
``@njit(inline="always")`` function of scalars returning a tuple; the sequence kernels
(``recurrent_cpu``, ``recurrent_cuda``) call them inside their loops over time, so the
equations live here and nowhere else. Gates are in PyTorch's order (LSTM i, f, g, o; GRU
r, z, n); ``gpunet/ops/recurrent.py`` holds the array-API reference of the same math.

Constants are float32 (``ONE``, ``ZERO``): exact, and they keep float32 math in float32
(a literal ``1.0`` would promote a float32 product to float64, halving the CPU's vector
width and running at the GPU's float64 rate), while float64 arguments promote them.

``sigmoid_scalar`` and ``tanh_scalar`` compile per target and type: on the CPU, float32
uses forms made of multiplies and adds only, which LLVM vectorises (a call to libm's
``exp`` keeps a loop scalar); float64 uses exact exp-based forms; CUDA uses ``exp`` and
``tanh`` of the argument's own precision.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit
from numba.core import types
from numba.extending import intrinsic, overload

# Options of the CPU kernels that inline these helpers: FMAs may be contracted, nothing
# is reassociated (that would undo exp's rounding trick), NaN and inf keep their meaning.
CPU_OPTIONS = {"error_model": "numpy", "fastmath": {"contract"}}

_f32 = np.float32
ZERO, ONE, TWO = _f32(0.0), _f32(1.0), _f32(2.0)

# --------------------------------------------------------------------------- exact forms


@njit(inline="always")
def _sigmoid_exact(x):
    """1 / (1 + exp(-x)) from exp(-|x|), which never overflows; both halves computed and
    one selected, so there is no branch to mispredict."""
    e = math.exp(-abs(x))
    r = 1.0 / (1.0 + e)
    return r if x >= 0 else e * r


@njit(inline="always")
def _tanh_exact(x):
    """tanh(x) from one exp(-2|x|), which never overflows; a short series near 0 keeps
    the relative error at rounding level."""
    a = abs(x)
    if a < 0.004:
        x2 = x * x
        return x * (1.0 - x2 * (1.0 / 3.0 - x2 * (2.0 / 15.0)))
    t = math.exp(-2.0 * a)
    y = (1.0 - t) / (1.0 + t)
    return y if x >= 0 else -y


@njit(inline="always")
def _sigmoid_exact_f32(x):
    e = math.exp(-abs(x))
    r = ONE / (ONE + e)
    return r if x >= ZERO else e * r


# --------------------------------------------------------------------------- float32, CPU
# exp(x) = 2^k * e^r with k = round(x / ln 2) and |r| <= ln(2) / 2, 2^k written straight
# into the exponent bits and e^r - 1 = q(r) by its Taylor series to r^7 (truncation below
# 5e-9), so that exp(x) = 2^k q + 2^k and exp(x) - 1 = 2^k q + (2^k - 1) keep full relative
# accuracy near 0: tanh(x) = -m / (2 + m) with m = exp(-2|x|) - 1 needs no series near 0.
# Relative error against float64: tanh 2.0e-7, sigmoid 1.4e-7 (float32 rounding is 6e-8).

_LOG2E = _f32(1.4426950408889634)
_LN2_HI, _LN2_LO = _f32(0.693359375), _f32(-2.12194440e-4)  # hi + lo = ln 2, hi exact
_ROUND = _f32(1.5 * 2**23)  # adding and subtracting it rounds to an integer
_EXP_MIN, _EXP_MAX = _f32(-87.0), _f32(88.0)  # 2^k stays a normal float32
_F2, _F3, _F4, _F5, _F6, _F7 = (_f32(1.0 / math.factorial(n)) for n in range(2, 8))


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
    q = r * (ONE + r * (_F2 + r * (_F3 + r * (_F4 + r * (_F5 + r * (_F6 + r * _F7))))))
    return _float32_from_bits((numba.int32(k) + numba.int32(127)) << numba.int32(23)), q


@njit(inline="always")
def _tanh_f32(x):
    scale, q = _exp_parts_f32(-TWO * abs(x))
    m = scale * q + (scale - ONE)  # exp(-2|x|) - 1, in [-1, 0]
    y = -m / (TWO + m)
    return y if x >= ZERO else -y


@njit(inline="always")
def _sigmoid_f32(x):
    scale, q = _exp_parts_f32(-x)
    return ONE / (ONE + (scale * q + scale))


# --------------------------------------------------------------------------- dispatch


def sigmoid_scalar(x):
    """1 / (1 + exp(-x)), never overflowing (compiled forms: see the module docstring)."""
    return _sigmoid_exact.py_func(x)


def tanh_scalar(x):
    """tanh(x), never overflowing (compiled forms: see the module docstring)."""
    return _tanh_exact.py_func(x)


@overload(sigmoid_scalar, target="cpu", jit_options=CPU_OPTIONS)
def _sigmoid_cpu(x):
    if x == types.float32:
        return lambda x: _sigmoid_f32(x)
    return lambda x: _sigmoid_exact(x)


@overload(tanh_scalar, target="cpu", jit_options=CPU_OPTIONS)
def _tanh_cpu(x):
    if x == types.float32:
        return lambda x: _tanh_f32(x)
    return lambda x: _tanh_exact(x)


@overload(sigmoid_scalar, target="cuda")
def _sigmoid_cuda(x):
    if x == types.float32:
        return lambda x: _sigmoid_exact_f32(x)
    return lambda x: _sigmoid_exact(x)


@overload(tanh_scalar, target="cuda")
def _tanh_cuda(x):
    return lambda x: math.tanh(x)


# --------------------------------------------------------------------------- cells


@njit(inline="always")
def rnn_forward_point(pre, relu):
    """h = tanh(pre), or max(pre, 0) with ``relu``."""
    if relu:  # not max(): numba's built-in CUDA target cannot compile it
        return ZERO if pre < ZERO else pre  # NaN stays NaN, as with max(pre, 0)
    return tanh_scalar(pre)


@njit(inline="always")
def rnn_backward_point(dh, h, relu):
    """d pre from d h, using the output h only."""
    if relu:
        return dh if h > ZERO else ZERO * dh
    return dh * (ONE - h * h)


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
    tanh_c = tanh_scalar(c)
    dc_total = dc + dh * o * (ONE - tanh_c * tanh_c)
    d_i = dc_total * g * i * (ONE - i)
    d_f = dc_total * c_prev * f * (ONE - f)
    d_g = dc_total * i * (ONE - g * g)
    d_o = dh * tanh_c * o * (ONE - o)
    return d_i, d_f, d_g, d_o, dc_total * f


@njit(inline="always")
def gru_forward_point(pre_r, pre_z, x_n, h_n, h_prev):
    """Returns (r, z, n, h): n = tanh(x_n + r h_n), h = (1 - z) n + z h_prev."""
    r = sigmoid_scalar(pre_r)
    z = sigmoid_scalar(pre_z)
    n = tanh_scalar(x_n + r * h_n)
    return r, z, n, (ONE - z) * n + z * h_prev


@njit(inline="always")
def gru_backward_point(dh, h_prev, r, z, n, h_n):
    """Returns (d pre_r, d pre_z, d x_n, d h_n, d h_prev through the z path)."""
    d_n = dh * (ONE - z) * (ONE - n * n)
    d_z = dh * (h_prev - n) * z * (ONE - z)
    d_r = d_n * h_n * r * (ONE - r)
    return d_r, d_z, d_n, d_n * r, dh * z
