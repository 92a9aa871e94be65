"""Fused optimizer updates: one pass over a parameter updates it and its state in place.

The update rules follow PyTorch's definitions (see ``gpunet/optim/*.py``, whose pure
array-API functions are the reference and the test oracle). Each rule's scalar math is
written once as an ``@njit(inline="always")`` helper and called from a CPU kernel
(``@njit(parallel=True, cache=True)``, prange over the flat parameter, with a serial twin
for small parameters) and a CUDA kernel (``@cuda.jit``, one thread per element).

The wrappers ``<rule>_cpu`` (NumPy) and ``<rule>_cuda`` (CuPy) take the parameter, its
gradient and its state arrays (all C-contiguous, of one dtype) and change the parameter
and the state in place. Hyper-parameters travel as one tuple cast to the arrays' dtype,
so a float32 parameter is updated in float32 arithmetic, as the reference does, and each
kernel has exactly two signatures (float32, float64). ``launch_<rule>`` runs the CUDA
kernel on any arrays the CUDA target accepts, so the simulator can test it on NumPy.

The ops ``sgd``, ``adagrad``, ``rmsprop`` and ``adam`` are registered by ``gpunet.optim``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, njit, prange

from ._cuda import current_stream, device_arrays

_THREADS = 256


# --------------------------------------------------------------------------- scalar rules
# Each rule takes its hyper-parameters as one tuple ``hyper`` (already in the arrays'
# dtype) and returns the new values of the parameter element and its state elements.
# The rules are branch-free: switched-off terms have a zero factor (weight decay) and
# switches pick between values, so the CPU loops vectorise (together with
# ``error_model="numpy"``, which drops Python's division-by-zero check: 4x faster).


@njit(inline="always")
def sgd_scalar(p, g, buf, hyper):
    """SGD with momentum: returns (new p, new momentum buffer)."""
    lr, momentum, damp_keep, weight_decay, nesterov, first, use_momentum = hyper
    g = g + weight_decay * p
    new_buf = g if first else momentum * buf + damp_keep * g
    step = (g + momentum * new_buf if nesterov else new_buf) if use_momentum else g
    return p - lr * step, (new_buf if use_momentum else buf)


@njit(inline="always")
def adagrad_scalar(p, g, total, hyper):
    """Adagrad: returns (new p, new sum of squared gradients)."""
    clr, weight_decay, eps = hyper
    g = g + weight_decay * p
    total = total + g * g
    return p - clr * (g / (math.sqrt(total) + eps)), total


@njit(inline="always")
def rmsprop_scalar(p, g, square_avg, grad_avg, buf, hyper):
    """RMSprop: returns (new p, square_avg, grad_avg, momentum buffer)."""
    lr, alpha, alpha_keep, eps, weight_decay, momentum, centered, use_momentum = hyper
    g = g + weight_decay * p
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
    g = g + coupled_decay * p
    m = m + beta1_keep * (g - m)
    v = beta2 * v + beta2_keep * (g * g)
    # A conditional, not max(): the CUDA target built into numba 0.66+ cannot compile a
    # two-argument max (numba issue 10753; numba-cuda can).
    v_max = (v if v > v_max else v_max) if amsgrad else v_max
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
# The serial kernel runs the whole range; the parallel one hands chunks to the threads.
# Small parameters run serially: waking the worker threads costs more than updating a
# few hundred thousand numbers.

PARALLEL_MIN_SIZE = 1 << 18
_CHUNK = 1 << 14


@njit(cache=True, error_model="numpy")
def _sgd_serial(p, g, buf, hyper):
    sgd_range(0, p.size, p, g, buf, hyper)


@njit(parallel=True, cache=True, error_model="numpy")
def _sgd_parallel(p, g, buf, hyper):
    for c in prange((p.size + _CHUNK - 1) // _CHUNK):
        sgd_range(c * _CHUNK, min(p.size, (c + 1) * _CHUNK), p, g, buf, hyper)


@njit(cache=True, error_model="numpy")
def _adagrad_serial(p, g, total, hyper):
    adagrad_range(0, p.size, p, g, total, hyper)


@njit(parallel=True, cache=True, error_model="numpy")
def _adagrad_parallel(p, g, total, hyper):
    for c in prange((p.size + _CHUNK - 1) // _CHUNK):
        adagrad_range(c * _CHUNK, min(p.size, (c + 1) * _CHUNK), p, g, total, hyper)


@njit(cache=True, error_model="numpy")
def _rmsprop_serial(p, g, square_avg, grad_avg, buf, hyper):
    rmsprop_range(0, p.size, p, g, square_avg, grad_avg, buf, hyper)


@njit(parallel=True, cache=True, error_model="numpy")
def _rmsprop_parallel(p, g, square_avg, grad_avg, buf, hyper):
    for c in prange((p.size + _CHUNK - 1) // _CHUNK):
        start, stop = c * _CHUNK, min(p.size, (c + 1) * _CHUNK)
        rmsprop_range(start, stop, p, g, square_avg, grad_avg, buf, hyper)


@njit(cache=True, error_model="numpy")
def _adam_serial(p, g, m, v, v_max, hyper):
    adam_range(0, p.size, p, g, m, v, v_max, hyper)


@njit(parallel=True, cache=True, error_model="numpy")
def _adam_parallel(p, g, m, v, v_max, hyper):
    for c in prange((p.size + _CHUNK - 1) // _CHUNK):
        adam_range(c * _CHUNK, min(p.size, (c + 1) * _CHUNK), p, g, m, v, v_max, hyper)


# --------------------------------------------------------------------------- CUDA kernels
# The CUDA kernels read and write the elements themselves rather than through the
# ``*_at`` helpers: the simulator cannot pass its arrays into an njit function.


@cuda.jit
def _sgd_cuda_kernel(p, g, buf, hyper):
    i = cuda.grid(1)
    if i < p.size:
        new_p, new_buf = sgd_scalar(p[i], g[i], buf[i], hyper)
        if hyper[6]:  # momentum
            buf[i] = new_buf
        p[i] = new_p


@cuda.jit
def _adagrad_cuda_kernel(p, g, total, hyper):
    i = cuda.grid(1)
    if i < p.size:
        new_p, new_total = adagrad_scalar(p[i], g[i], total[i], hyper)
        total[i] = new_total
        p[i] = new_p


@cuda.jit
def _rmsprop_cuda_kernel(p, g, square_avg, grad_avg, buf, hyper):
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
def _adam_cuda_kernel(p, g, m, v, v_max, hyper):
    i = cuda.grid(1)
    if i < p.size:
        new_p, new_m, new_v, new_max = adam_scalar(p[i], g[i], m[i], v[i], v_max[i], hyper)
        m[i] = new_m
        v[i] = new_v
        if hyper[8]:  # amsgrad
            v_max[i] = new_max
        p[i] = new_p


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


def _run_cpu(parallel, serial, arrays, hyper):
    kernel = parallel if arrays[0].size >= PARALLEL_MIN_SIZE else serial
    kernel(*_flat(*arrays), hyper)


# --------------------------------------------------------------------------- wrappers


def sgd_cpu(
    param, grad, momentum_buffer, *, lr, momentum, dampening, weight_decay, nesterov, first
):
    """SGD step in place on NumPy arrays.

    Without momentum the buffer slot is neither read nor written, so any array of the
    parameter's size may fill it; the same holds for the unused slots of RMSprop and Adam.
    """
    scalars = _sgd_scalars(param.dtype, lr, momentum, dampening, weight_decay, nesterov, first)
    _run_cpu(_sgd_parallel, _sgd_serial, (param, grad, momentum_buffer), scalars)


def adagrad_cpu(param, grad, state_sum, *, lr, lr_decay, weight_decay, eps, step):
    """Adagrad step in place on NumPy arrays."""
    scalars = _adagrad_scalars(param.dtype, lr, lr_decay, weight_decay, eps, step)
    _run_cpu(_adagrad_parallel, _adagrad_serial, (param, grad, state_sum), scalars)


def rmsprop_cpu(
    param,
    grad,
    square_avg,
    grad_avg,
    momentum_buffer,
    *,
    lr,
    alpha,
    eps,
    weight_decay,
    momentum,
    centered,
):
    """RMSprop step in place on NumPy arrays (unused buffers may be any same-size array)."""
    scalars = _rmsprop_scalars(param.dtype, lr, alpha, eps, weight_decay, momentum, centered)
    arrays = (param, grad, square_avg, grad_avg, momentum_buffer)
    _run_cpu(_rmsprop_parallel, _rmsprop_serial, arrays, scalars)


def adam_cpu(
    param,
    grad,
    exp_avg,
    exp_avg_sq,
    max_exp_avg_sq,
    *,
    lr,
    beta1,
    beta2,
    eps,
    weight_decay,
    step,
    amsgrad,
    decoupled,
):
    """Adam/AdamW step in place on NumPy arrays (``max_exp_avg_sq`` may be any same-size
    array when ``amsgrad`` is False)."""
    scalars = _adam_scalars(
        param.dtype, lr, beta1, beta2, eps, weight_decay, step, amsgrad, decoupled
    )
    arrays = (param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq)
    _run_cpu(_adam_parallel, _adam_serial, arrays, scalars)


def _launch(kernel, arrays, scalars, stream):
    flat = _flat(*arrays)
    size = flat[0].size
    # Small parameters (biases) get one small block rather than 256 mostly idle threads.
    threads = _THREADS if size >= _THREADS else max(32, -(-size // 32) * 32)
    blocks = (size + threads - 1) // threads
    flat = device_arrays(*flat)
    if stream is None:
        kernel[blocks, threads](*flat, scalars)
    else:
        kernel[blocks, threads, stream](*flat, scalars)


def launch_sgd(param, grad, momentum_buffer, *, stream=None, **hyper):
    """Run the CUDA SGD kernel on any arrays the CUDA target accepts."""
    _launch(
        _sgd_cuda_kernel, (param, grad, momentum_buffer), _sgd_scalars(param.dtype, **hyper), stream
    )


def launch_adagrad(param, grad, state_sum, *, stream=None, **hyper):
    """Run the CUDA Adagrad kernel on any arrays the CUDA target accepts."""
    _launch(
        _adagrad_cuda_kernel,
        (param, grad, state_sum),
        _adagrad_scalars(param.dtype, **hyper),
        stream,
    )


def launch_rmsprop(param, grad, square_avg, grad_avg, momentum_buffer, *, stream=None, **hyper):
    """Run the CUDA RMSprop kernel on any arrays the CUDA target accepts."""
    _launch(
        _rmsprop_cuda_kernel,
        (param, grad, square_avg, grad_avg, momentum_buffer),
        _rmsprop_scalars(param.dtype, **hyper),
        stream,
    )


def launch_adam(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, *, stream=None, **hyper):
    """Run the CUDA Adam kernel on any arrays the CUDA target accepts."""
    _launch(
        _adam_cuda_kernel,
        (param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq),
        _adam_scalars(param.dtype, **hyper),
        stream,
    )


def sgd_cuda(param, grad, momentum_buffer, **hyper):
    """SGD step in place on CuPy arrays, on CuPy's current stream."""
    launch_sgd(param, grad, momentum_buffer, stream=current_stream(), **hyper)


def adagrad_cuda(param, grad, state_sum, **hyper):
    """Adagrad step in place on CuPy arrays, on CuPy's current stream."""
    launch_adagrad(param, grad, state_sum, stream=current_stream(), **hyper)


def rmsprop_cuda(param, grad, square_avg, grad_avg, momentum_buffer, **hyper):
    """RMSprop step in place on CuPy arrays, on CuPy's current stream."""
    launch_rmsprop(
        param, grad, square_avg, grad_avg, momentum_buffer, stream=current_stream(), **hyper
    )


def adam_cuda(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, **hyper):
    """Adam/AdamW step in place on CuPy arrays, on CuPy's current stream."""
    launch_adam(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, stream=current_stream(), **hyper)


# Below this many elements the reference update (a few NumPy calls) beats the ~15 us
# of argument handling a fused CPU call costs; the optimizer reads it as ``min_size``.
CPU_MIN_SIZE = 1024
for _wrapper in (sgd_cpu, adagrad_cpu, rmsprop_cpu, adam_cpu):
    _wrapper.min_size = CPU_MIN_SIZE
