"""The checks at gpunet's public boundary, written once.

Every public entry (a layer's ``forward`` and ``backward``, a loss and its ``backward``,
an optimizer, ``fit``/``evaluate``/``predict``, ``load``, ``seed``, the ``GPUNET_*``
variables) checks what it is given with these functions before any kernel sees it. Each
raises ``ValueError`` or ``TypeError`` whose message starts with the object and method
(``"Conv2D.backward: ..."``) and says what was expected and what came.

The dtype rule (as Keras): a layer casts its floating or integer input to the floating
dtype of its parameters; complex, boolean, object and string data are errors. Parameters
and optimizer state never change dtype.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from gpunet import backend

_ARRAY_TYPES = (np.ndarray,)


# --------------------------------------------------------------------------- arrays


def _is_array(value: Any) -> bool:
    if isinstance(value, _ARRAY_TYPES):
        return True
    return (
        hasattr(value, "shape")
        and hasattr(value, "dtype")
        and hasattr(value, "__array_namespace__")
    )


def _kind(dtype: Any) -> str:
    """NumPy's kind letter of a dtype of any array library ('f', 'i', 'u', 'b', 'c', ...)."""
    try:
        return np.dtype(dtype).kind
    except TypeError:  # an array-api-strict dtype
        return np.dtype(str(dtype).rsplit(".", 1)[-1]).kind


def array(value: Any, where: str, what: str = "input") -> Any:
    """``value`` if it is an array, else ``TypeError`` naming ``where`` and what came."""
    if not _is_array(value):
        raise TypeError(
            f"{where}: expected an array for {what}, got {type(value).__name__} "
            "(make one with gpunet.asarray)"
        )
    return value


def floating(value: Any, where: str, dtype: Any, what: str = "input") -> Any:
    """``value`` as an array of floating ``dtype`` (the layer's), cast where needed.

    Floating and integer data are cast (a copy only when the dtype differs); complex,
    boolean, object and string data raise ``TypeError``.
    """
    array(value, where, what)
    if value.dtype == dtype:
        return value
    kind = _kind(value.dtype)
    if kind not in "fiu":
        raise TypeError(
            f"{where}: {what} has dtype {value.dtype}; expected real numbers "
            f"(floating or integer), which are cast to {_name(dtype)}"
        )
    return backend.namespace(value).astype(value, dtype)


def _name(dtype: Any) -> str:
    return str(np.dtype(dtype)) if not hasattr(dtype, "name") else str(dtype.name)


def labels(value: Any, where: str, classes: int, what: str = "target") -> Any:
    """Integer class labels in ``[0, classes)``; integral floats are accepted and cast."""
    array(value, where, what)
    kind = _kind(value.dtype)
    xp = backend.namespace(value)
    if kind == "f":
        if value.shape[0] and not bool(xp.all(value == xp.round(value))):
            raise TypeError(f"{where}: {what} must hold integer class labels, got fractions")
        value = xp.astype(value, xp.int64)
    elif kind not in "iu":
        raise TypeError(f"{where}: {what} must hold integer class labels, got dtype {value.dtype}")
    if value.shape[0]:
        low, high = int(xp.min(value)), int(xp.max(value))
        if low < 0 or high >= classes:
            raise ValueError(
                f"{where}: {what} labels must be in [0, {classes}), got values from {low} to {high}"
            )
    return value


def shape(
    value: Any, where: str, expected: Sequence[int | str | None], what: str = "input"
) -> None:
    """``value.shape`` matches ``expected``: ints must match, names and None match anything.

    The message shows the expected shape with its names: ``(N, 3, H, W)``.
    """
    got = tuple(value.shape)
    ok = len(got) == len(expected) and all(
        not isinstance(e, int) or e == g for e, g in zip(expected, got, strict=True)
    )
    if not ok:
        wanted = ", ".join("?" if e is None else str(e) for e in expected)
        if len(expected) == 1:
            wanted += ","
        raise ValueError(f"{where}: expected {what} of shape ({wanted}), got shape {got}")


def same_shape(value: Any, reference_shape: Sequence[int], where: str, what: str) -> None:
    """``value.shape`` equals ``reference_shape`` exactly."""
    got, wanted = tuple(value.shape), tuple(reference_shape)
    if got != wanted:
        raise ValueError(f"{where}: expected {what} of shape {wanted}, got shape {got}")


def nonempty(value: Any, where: str, what: str = "input") -> None:
    """At least one sample on axis 0."""
    if value.shape[0] == 0:
        raise ValueError(
            f"{where}: {what} is an empty batch (shape {tuple(value.shape)}); "
            "expected at least one sample"
        )


def gradient(grad: Any, where: str, expected_shape: Sequence[int], dtype: Any) -> Any:
    """A gradient for ``backward``: an array of the forward output's shape, cast to ``dtype``."""
    grad = floating(grad, where, dtype, what="the gradient")
    same_shape(grad, expected_shape, where, "a gradient")
    return grad


def after_forward(saved: Any, where: str) -> None:
    """``backward`` called with nothing saved by a forward pass."""
    if saved is None:
        raise RuntimeError(
            f"{where}: called before forward (there is no forward pass to differentiate)"
        )


# --------------------------------------------------------------------------- settings


def integer(value: Any, where: str, name: str, minimum: int | None = None) -> int:
    """An int (not a bool, not a float such as 3.7), at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{where}: {name} must be an int, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{where}: {name} must be >= {minimum}, got {value!r}")
    return int(value)


def number(
    value: Any,
    where: str,
    name: str,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """A finite real number (not a bool or a string) in the given range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{where}: {name} must be a number, got {value!r}")
    value = float(value)
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if not math.isfinite(value) or too_low or too_high:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        span = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
        raise ValueError(f"{where}: {name} must be a finite number in {span}, got {value!r}")
    return value


def flag(value: Any, where: str, name: str) -> bool:
    """A bool (``True``/``False``, or NumPy's)."""
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{where}: {name} must be True or False, got {value!r}")
    return bool(value)


def choice(value: Any, where: str, name: str, options: Sequence[Any]) -> Any:
    """One of ``options``."""
    if value not in options:
        listed = ", ".join(repr(o) for o in options)
        raise ValueError(f"{where}: {name} must be one of {listed}, got {value!r}")
    return value
