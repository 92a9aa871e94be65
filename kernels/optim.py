"""Fused optimizer updates: one pass over a parameter updates it and its state in place.

The update rules follow PyTorch's definitions (see ``gpunet/optim/*.py``, whose pure
array-API functions are the reference and the test oracle). Each rule's scalar math is
written once as an ``@njit(inline="always")`` helper and called from a CPU kernel (one
serial kernel per rule, run over slices of a large parameter by gpunet's threads) and a
CUDA kernel (``@cuda.jit``, one thread per element).

The wrappers ``<rule>_cpu`` (NumPy) and ``<rule>_cuda`` (CuPy, or NumPy under the CUDA
simulator) take the parameter, its gradient and its state arrays (all C-contiguous, of
one dtype) and change the parameter and the state in place. Hyper-parameters travel as
one tuple of scalars cast to the arrays' dtype and switches as bools, so a float32
parameter is updated in float32 arithmetic, as the reference does, and each kernel has
exactly two signatures (float32, float64: ``cuda_signatures``).

The ops ``sgd``, ``adagrad``, ``rmsprop`` and ``adam`` are registered by ``gpunet.optim``.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numba import njit

from . import _parallel
from ._cuda import launch, numba_cuda
from ._jit import cpu_kernel

# --------------------------------------------------------------------------- scalar rules


@njit(inline="always")
def decayed(g, p, weight_decay):
    """``g + weight_decay * p``, and ``g`` itself when there is no decay (as the reference
    and PyTorch: 0 * inf is NaN). A select, so the loops stay branch-free."""
    with_decay = g + weight_decay * p
    return with_decay if weight_decay != 0 else g


# Each rule takes its hyper-parameters as one tuple ``hyper`` (already in the arrays'
# dtype) and returns the new values of the parameter element and its state elements.
# The rules are branch-free: switched-off terms have a zero factor (weight decay) and
# switches pick between values, so the CPU loops vectorise (together with
# ``error_model="numpy"``, which drops Python's division-by-zero check: 4x faster).


@njit(inline="always")
def sgd_scalar(p, g, buf, hyper):
    """SGD with momentum: returns (new p, new momentum buffer)."""
    lr, momentum, damp_keep, weight_decay, nesterov, first, use_momentum = hyper
    g = decayed(g, p, weight_decay)
    new_buf = g if first else momentum * buf + damp_keep * g
    step = (g + momentum * new_buf if nesterov else new_buf) if use_momentum else g
    return p - lr * step, (new_buf if use_momentum else buf)


@njit(inline="always")
def adagrad_scalar(p, g, total, hyper):
    """Adagrad: returns (new p, new sum of squared gradients)."""
    clr, weight_decay, eps = hyper
    g = decayed(g, p, weight_decay)
    total = total + g * g
    return p - clr * (g / (math.sqrt(total) + eps)), total


@njit(inline="always")
def rmsprop_scalar(p, g, square_avg, grad_avg, buf, hyper):
    """RMSprop: returns (new p, square_avg, grad_avg, momentum buffer)."""
    lr, alpha, alpha_keep, eps, weight_decay, momentum, centered, use_momentum = hyper
    g = decayed(g, p, weight_decay)
    square_avg = alpha * square_avg + alpha_keep * (g * g)
    new_avg = grad_avg + alpha_keep * (g - grad_avg)
    grad_avg = new_avg if centered else grad_avg
    variance = square_avg - new_avg * new_avg if centered else square_avg
    scaled = g / (math.sqrt(variance) + eps)
    new_buf = momentum * buf + scaled
    p = p - lr * (new_buf if use_momentum else scaled)
    return p, square_avg, grad_avg, (new_buf if use_momentum else buf)


@njit(inline="always")
def adam_scalar(p, g, m, v, v_max, hyper):
    """Adam / AdamW: returns (new p, first moment, second moment, max second moment).

    ``decay_keep`` is ``1 - lr * weight_decay`` for AdamW and 1 for Adam;
    ``coupled_decay`` is ``weight_decay`` for Adam and 0 for AdamW.
    """
    (decay_keep, coupled_decay, beta1_keep, beta2, beta2_keep, step_size, bc2_sqrt, eps,
     amsgrad) = hyper  # fmt: skip
    p = p * decay_keep
    g = decayed(g, p, coupled_decay)
    m = m + beta1_keep * (g - m)
    v = beta2 * v + beta2_keep * (g * g)
    # A conditional, not max(): the CUDA target built into numba 0.66+ cannot compile a
    # two-argument max (numba issue 10753; numba-cuda can). A NaN on either side wins,
    # as in the reference's maximum (and PyTorch's).
    v_max = (v if v > v_max or v != v else v_max) if amsgrad else v_max
    denom = math.sqrt(v_max if amsgrad else v) / bc2_sqrt + eps
    return p - step_size * (m / denom), m, v, v_max


# --------------------------------------------------------------------------- CPU loops
# ``*_at`` updates element i. A state slot the setting does not use may alias another
# array (the caller passes any same-size array there); it is never written, and the
# ``write_*`` switches are literal constants at each call site, so every loop below is
# compiled without that store. Aliased arrays that are written would keep LLVM from
# vectorising the loop.


@njit(inline="always")
def sgd_at(i, p, g, buf, hyper, write_buf):
    new_p, new_buf = sgd_scalar(p[i], g[i], buf[i], hyper)
    if write_buf:
        buf[i] = new_buf
    p[i] = new_p


@njit(inline="always")
def sgd_range(start, stop, p, g, buf, hyper):
    if hyper[6]:  # momentum
        for i in range(start, stop):
            sgd_at(i, p, g, buf, hyper, True)
    else:
        for i in range(start, stop):
            sgd_at(i, p, g, buf, hyper, False)


@njit(inline="always")
def adagrad_range(start, stop, p, g, total, hyper):
    for i in range(start, stop):
        new_p, new_total = adagrad_scalar(p[i], g[i], total[i], hyper)
        total[i] = new_total
        p[i] = new_p


@njit(inline="always")
def rmsprop_at(i, p, g, square_avg, grad_avg, buf, hyper, write_avg, write_buf):
    new_p, sq, ga, b = rmsprop_scalar(p[i], g[i], square_avg[i], grad_avg[i], buf[i], hyper)
    square_avg[i] = sq
    if write_avg:
        grad_avg[i] = ga
    if write_buf:
        buf[i] = b
    p[i] = new_p


@njit(inline="always")
def rmsprop_range(start, stop, p, g, square_avg, grad_avg, buf, hyper):
    centered, use_momentum = hyper[6], hyper[7]
    if centered and use_momentum:
        for i in range(start, stop):
            rmsprop_at(i, p, g, square_avg, grad_avg, buf, hyper, True, True)
    elif centered:
        for i in range(start, stop):
            rmsprop_at(i, p, g, square_avg, grad_avg, buf, hyper, True, False)
    elif use_momentum:
        for i in range(start, stop):
            rmsprop_at(i, p, g, square_avg, grad_avg, buf, hyper, False, True)
    else:
        for i in range(start, stop):
            rmsprop_at(i, p, g, square_avg, grad_avg, buf, hyper, False, False)


@njit(inline="always")
def adam_at(i, p, g, m, v, v_max, hyper, write_max):
    new_p, new_m, new_v, new_max = adam_scalar(p[i], g[i], m[i], v[i], v_max[i], hyper)
    m[i] = new_m
    v[i] = new_v
    if write_max:
        v_max[i] = new_max
    p[i] = new_p


@njit(inline="always")
def adam_range(start, stop, p, g, m, v, v_max, hyper):
    if hyper[8]:  # amsgrad
        for i in range(start, stop):
            adam_at(i, p, g, m, v, v_max, hyper, True)
    else:
        for i in range(start, stop):
            adam_at(i, p, g, m, v, v_max, hyper, False)


# --------------------------------------------------------------------------- CPU kernels
# One serial kernel per rule over whole (flat) arrays; gpunet's threads each take a slice
# of a large parameter (``_parallel``). The loops start at 0, so that Numba knows every
# index is non-negative and LLVM vectorises them.


@cpu_kernel
def _sgd_cpu(p, g, buf, hyper):
    sgd_range(0, p.size, p, g, buf, hyper)


@cpu_kernel
def _adagrad_cpu(p, g, total, hyper):
    adagrad_range(0, p.size, p, g, total, hyper)


@cpu_kernel
def _rmsprop_cpu(p, g, square_avg, grad_avg, buf, hyper):
    rmsprop_range(0, p.size, p, g, square_avg, grad_avg, buf, hyper)


@cpu_kernel
def _adam_cpu(p, g, m, v, v_max, hyper):
    adam_range(0, p.size, p, g, m, v, v_max, hyper)


# --------------------------------------------------------------------------- CUDA kernels
# The CUDA kernels read and write the elements themselves rather than through the
# ``*_at`` helpers: the simulator cannot pass its arrays into an njit function.

cuda = None  # numba.cuda, set by cuda_kernels()


@functools.cache
def cuda_kernels():
    """The CUDA update kernels, compiled on first use."""
    # A module global, not a local: the CUDA simulator swaps module-level ``cuda``
    # references for its own when it runs a kernel.
    global cuda
    cuda = numba_cuda()

    @cuda.jit
    def sgd(p, g, buf, hyper):
        i = cuda.grid(1)
        if i < p.size:
            new_p, new_buf = sgd_scalar(p[i], g[i], buf[i], hyper)
            if hyper[6]:  # momentum
                buf[i] = new_buf
            p[i] = new_p

    @cuda.jit
    def adagrad(p, g, total, hyper):
        i = cuda.grid(1)
        if i < p.size:
            new_p, new_total = adagrad_scalar(p[i], g[i], total[i], hyper)
            total[i] = new_total
            p[i] = new_p

    @cuda.jit
    def rmsprop(p, g, square_avg, grad_avg, buf, hyper):
        i = cuda.grid(1)
        if i < p.size:
            new_p, sq, ga, b = rmsprop_scalar(p[i], g[i], square_avg[i], grad_avg[i], buf[i], hyper)
            square_avg[i] = sq
            if hyper[6]:  # centered
                grad_avg[i] = ga
            if hyper[7]:  # momentum
                buf[i] = b
            p[i] = new_p

    @cuda.jit
    def adam(p, g, m, v, v_max, hyper):
        i = cuda.grid(1)
        if i < p.size:
            new_p, new_m, new_v, new_max = adam_scalar(p[i], g[i], m[i], v[i], v_max[i], hyper)
            m[i] = new_m
            v[i] = new_v
            if hyper[8]:  # amsgrad
                v_max[i] = new_max
            p[i] = new_p

    return {"sgd": sgd, "adagrad": adagrad, "rmsprop": rmsprop, "adam": adam}


def cuda_signatures(dtype):
    """The argument types each kernel of ``cuda_kernels()`` is launched with, for float
    dtype ``dtype`` (``numba.types.float32`` or ``float64``): flat arrays and the tuple of
    hyper-parameters (scalars in ``dtype``, then the switches) that ``_<rule>_scalars``
    makes."""
    from numba import types

    def hyper(scalars, switches):
        return types.Tuple((dtype,) * scalars + (types.boolean,) * switches)

    flat = dtype[::1]
    return {
        "sgd": (flat, flat, flat, hyper(4, 3)),
        "adagrad": (flat, flat, flat, hyper(3, 0)),
        "rmsprop": (flat,) * 5 + (hyper(6, 2),),
        "adam": (flat,) * 5 + (hyper(8, 1),),
    }


# --------------------------------------------------------------------------- scalars


def _sgd_scalars(dtype, lr, momentum, dampening, weight_decay, nesterov, first):
    cast = np.dtype(dtype).type
    return (cast(lr), cast(momentum), cast(1.0 - dampening), cast(weight_decay),
            bool(nesterov), bool(first), momentum != 0)  # fmt: skip


def _adagrad_scalars(dtype, lr, lr_decay, weight_decay, eps, step):
    cast = np.dtype(dtype).type
    return cast(lr / (1.0 + (step - 1) * lr_decay)), cast(weight_decay), cast(eps)


def _rmsprop_scalars(dtype, lr, alpha, eps, weight_decay, momentum, centered):
    cast = np.dtype(dtype).type
    return (cast(lr), cast(alpha), cast(1.0 - alpha), cast(eps), cast(weight_decay),
            cast(momentum), bool(centered), momentum > 0)  # fmt: skip


def _adam_scalars(dtype, lr, beta1, beta2, eps, weight_decay, step, amsgrad, decoupled):
    cast = np.dtype(dtype).type
    step_size = lr / (1.0 - beta1**step)
    bc2_sqrt = math.sqrt(1.0 - beta2**step)
    decay_keep = 1.0 - lr * weight_decay if decoupled else 1.0
    coupled_decay = 0.0 if decoupled else weight_decay
    return (cast(decay_keep), cast(coupled_decay), cast(1.0 - beta1), cast(beta2),
            cast(1.0 - beta2), cast(step_size), cast(bc2_sqrt), cast(eps),
            bool(amsgrad))  # fmt: skip


def _flat(*arrays):
    return tuple(a.reshape(-1) for a in arrays)


def _run_cpu(kernel, arrays, hyper, cost):
    flat = _flat(*arrays)
    size = flat[0].size
    _parallel.run_rows(
        size, size * cost, lambda start, stop: kernel(*(a[start:stop] for a in flat), hyper)
    )


def _launch(rule, arrays, hyper):
    flat = _flat(*arrays)
    launch(cuda_kernels()[rule], flat[0].size, *flat, hyper)


# --------------------------------------------------------------------------- wrappers
# ``<rule>_cpu`` update NumPy arrays; ``<rule>_cuda`` CuPy arrays on CuPy's current
# stream, or NumPy arrays under the simulator. Without momentum the buffer slot is neither read
# nor written, so any array of the parameter's size may fill it; the same holds for the
# unused slots of RMSprop and Adam.


def sgd_cpu(param, grad, momentum_buffer, **hyper):
    """SGD step in place on NumPy arrays (hyper-parameters as ``sgd_update``)."""
    _run_cpu(_sgd_cpu, (param, grad, momentum_buffer), _sgd_scalars(param.dtype, **hyper), 2)


def adagrad_cpu(param, grad, state_sum, **hyper):
    """Adagrad step in place on NumPy arrays."""
    _run_cpu(_adagrad_cpu, (param, grad, state_sum), _adagrad_scalars(param.dtype, **hyper), 4)


def rmsprop_cpu(param, grad, square_avg, grad_avg, momentum_buffer, **hyper):
    """RMSprop step in place on NumPy arrays."""
    arrays = (param, grad, square_avg, grad_avg, momentum_buffer)
    _run_cpu(_rmsprop_cpu, arrays, _rmsprop_scalars(param.dtype, **hyper), 4)


def adam_cpu(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, **hyper):
    """Adam/AdamW step in place on NumPy arrays."""
    arrays = (param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq)
    _run_cpu(_adam_cpu, arrays, _adam_scalars(param.dtype, **hyper), 4)


def sgd_cuda(param, grad, momentum_buffer, **hyper):
    """SGD step in place on CuPy arrays (NumPy arrays under the simulator)."""
    _launch("sgd", (param, grad, momentum_buffer), _sgd_scalars(param.dtype, **hyper))


def adagrad_cuda(param, grad, state_sum, **hyper):
    """Adagrad step in place on CuPy arrays (NumPy arrays under the simulator)."""
    _launch("adagrad", (param, grad, state_sum), _adagrad_scalars(param.dtype, **hyper))


def rmsprop_cuda(param, grad, square_avg, grad_avg, momentum_buffer, **hyper):
    """RMSprop step in place on CuPy arrays (NumPy arrays under the simulator)."""
    arrays = (param, grad, square_avg, grad_avg, momentum_buffer)
    _launch("rmsprop", arrays, _rmsprop_scalars(param.dtype, **hyper))


def adam_cuda(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, **hyper):
    """Adam/AdamW step in place on CuPy arrays (NumPy arrays under the simulator)."""
    arrays = (param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq)
    _launch("adam", arrays, _adam_scalars(param.dtype, **hyper))
