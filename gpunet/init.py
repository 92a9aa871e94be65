"""Initialisers: functions ``NAME(shape, *, dtype=None, **options)`` returning a new array.

Every initialiser draws from gpunet's seeded host generator and moves the result onto
the current backend, so one seed gives one initial model on every backend.

Fans follow the layouts of DESIGN.md: a Dense weight ``(in, out)`` has
``fan_in = in``, ``fan_out = out``; a convolution weight ``(out, in, kh, kw)`` has
``fan_in = in * kh * kw``, ``fan_out = out * kh * kw``. Recurrent layers initialise each
gate block ``(input, hidden)`` separately, so each block has its own fans.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from gpunet import backend, checks

Shape = tuple[int, ...]


def fans(shape: Shape) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight of this shape (Dense or convolution layout)."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for a nonlinearity (PyTorch's values).

    Args:
        nonlinearity: ``linear``, ``sigmoid``, ``tanh``, ``relu``, ``leaky_relu``,
            ``selu`` or a convolution name (gain 1).
        param: the negative slope for ``leaky_relu`` (default 0.01).
    """
    if nonlinearity in ("linear", "sigmoid", "conv1d", "conv2d", "conv3d", "softsign"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3.0
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 0.75
    raise ValueError(f"calculate_gain: unknown nonlinearity {nonlinearity!r}")


def _check_shape(shape: Shape, name: str) -> None:
    if not all(isinstance(d, int | np.integer) and d >= 0 for d in shape):
        raise ValueError(f"{name}: shape must be a tuple of ints >= 0, got {shape!r}")


def _to_backend(values: np.ndarray, dtype: Any) -> Any:
    array = backend.asarray(values, dtype=dtype if dtype is not None else backend.DEFAULT_FLOAT)
    if checks.kind(array.dtype) != "f":
        raise TypeError(
            f"gpunet.init: parameters must have a real floating dtype (float32, float64), "
            f"got dtype {dtype!r}"
        )
    return array


def parameter_array(make: Callable[..., Any], shape: Shape, dtype: Any, layer: str) -> Any:
    """``make(shape, dtype=dtype)`` checked: an array of ``shape`` with a floating dtype.

    Raises:
        TypeError, ValueError: naming ``layer`` when the initialiser returned something else.
    """
    array = make(shape, dtype=dtype)
    where = f"{layer}: the initialiser {getattr(make, '__name__', make)!r}"
    checks.array(array, where, "its result")
    if tuple(array.shape) != tuple(shape) or checks.kind(array.dtype) != "f":
        raise ValueError(
            f"{where} returned an array of shape {tuple(array.shape)} and dtype {array.dtype}; "
            f"expected shape {tuple(shape)} with a floating dtype"
        )
    return array


def zeros(shape: Shape, *, dtype: Any = None) -> Any:
    """All zeros."""
    return _to_backend(np.zeros(shape), dtype)


def ones(shape: Shape, *, dtype: Any = None) -> Any:
    """All ones."""
    return _to_backend(np.ones(shape), dtype)


def constant(shape: Shape, *, value: float = 0.0, dtype: Any = None) -> Any:
    """Every element ``value``."""
    return _to_backend(np.full(shape, value), dtype)


def uniform(shape: Shape, *, low: float = 0.0, high: float = 1.0, dtype: Any = None) -> Any:
    """U(low, high)."""
    _check_shape(shape, "uniform")
    if not low <= high:
        raise ValueError(f"uniform: expected low <= high, got low={low} and high={high}")
    return _to_backend(backend.host_rng().uniform(low, high, size=shape), dtype)


def normal(shape: Shape, *, mean: float = 0.0, std: float = 1.0, dtype: Any = None) -> Any:
    """N(mean, std**2)."""
    _check_shape(shape, "normal")
    if not std >= 0:
        raise ValueError(f"normal: std must be >= 0, got {std}")
    return _to_backend(backend.host_rng().normal(mean, std, size=shape), dtype)


def xavier_uniform(shape: Shape, *, gain: float = 1.0, dtype: Any = None) -> Any:
    """Glorot uniform: U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = fans(shape)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform(shape, low=-bound, high=bound, dtype=dtype)


def xavier_normal(shape: Shape, *, gain: float = 1.0, dtype: Any = None) -> Any:
    """Glorot normal: N(0, std**2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = fans(shape)
    return normal(shape, std=gain * math.sqrt(2.0 / (fan_in + fan_out)), dtype=dtype)


def _kaiming_std(shape: Shape, a: float, mode: str, nonlinearity: str) -> float:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"kaiming: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = fans(shape)
    fan = fan_in if mode == "fan_in" else fan_out
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform(
    shape: Shape,
    *,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "relu",
    dtype: Any = None,
) -> Any:
    """He uniform: U(-b, b) with b = gain * sqrt(3 / fan).

    Args:
        a: the negative slope when ``nonlinearity="leaky_relu"`` (default 0).
        mode: ``"fan_in"`` (default; keeps forward variance) or ``"fan_out"``.
        nonlinearity: the activation that follows (default ``"relu"``).
    """
    bound = math.sqrt(3.0) * _kaiming_std(shape, a, mode, nonlinearity)
    return uniform(shape, low=-bound, high=bound, dtype=dtype)


def kaiming_normal(
    shape: Shape,
    *,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "relu",
    dtype: Any = None,
) -> Any:
    """He normal: N(0, std**2) with std = gain / sqrt(fan). Arguments as kaiming_uniform."""
    return normal(shape, std=_kaiming_std(shape, a, mode, nonlinearity), dtype=dtype)


def orthogonal(shape: Shape, *, gain: float = 1.0, dtype: Any = None) -> Any:
    """A (semi-)orthogonal matrix times ``gain``; dimensions after the first are flattened."""
    if len(shape) < 2:
        raise ValueError(f"orthogonal: needs at least 2 dimensions, got shape {shape}")
    rows, cols = shape[0], math.prod(shape[1:])
    flat = backend.host_rng().normal(size=(max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(flat)
    q *= np.sign(np.diag(r))  # makes the decomposition unique, hence uniformly distributed
    if rows < cols:
        q = q.T
    return _to_backend(gain * q.reshape(shape), dtype)


def per_gate(
    init: str | Callable[..., Any], shape: Shape, gates: int, *, dtype: Any = None, **options: Any
) -> Any:
    """A recurrent weight ``(rows, gates * hidden)`` made of ``gates`` blocks, each its own.

    Each gate block ``(rows, hidden)`` is drawn by ``init`` separately, so its fans are
    ``(rows, hidden)`` rather than ``(rows, gates * hidden)`` and an orthogonal init gives
    an orthogonal block per gate (as Keras does for LSTM and GRU kernels).

    Args:
        init: an initialiser name or function.
        shape: ``(rows, gates * hidden)``.
        gates: the number of gate blocks (4 for LSTM, 3 for GRU, 1 for a simple RNN).
        dtype: array dtype (default float32).
        **options: passed to the initialiser (``gain=...``).
    """
    if len(shape) != 2 or gates < 1 or shape[1] % gates != 0:
        raise ValueError(
            f"per_gate: expected shape (rows, gates * hidden) with {gates} gates, got {shape}"
        )
    make = get(init, layer="per_gate")
    hidden = shape[1] // gates
    blocks = [make((shape[0], hidden), dtype=dtype, **options) for _ in range(gates)]
    return backend.namespace(*blocks).concat(blocks, axis=1)


INITIALIZERS: dict[str, Callable[..., Any]] = {
    fn.__name__: fn
    for fn in (
        zeros,
        ones,
        constant,
        uniform,
        normal,
        xavier_uniform,
        xavier_normal,
        kaiming_uniform,
        kaiming_normal,
        orthogonal,
    )
}
INITIALIZERS["glorot_uniform"] = xavier_uniform
INITIALIZERS["glorot_normal"] = xavier_normal
INITIALIZERS["he_uniform"] = kaiming_uniform
INITIALIZERS["he_normal"] = kaiming_normal


def get(init: str | Callable[..., Any], layer: str = "init") -> Callable[..., Any]:
    """The initialiser for a name or a callable (as layers take it through ``init=``)."""
    if callable(init):
        return init
    try:
        return INITIALIZERS[init]
    except (KeyError, TypeError):
        raise ValueError(
            f"{layer}: unknown initialiser {init!r}; available: {', '.join(sorted(INITIALIZERS))}"
        ) from None
