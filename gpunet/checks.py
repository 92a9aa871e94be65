"""The checks at gpunet's public boundary, written once.

Every public entry (a layer's ``forward`` and ``backward``, a loss and its ``backward``,
an optimizer, ``fit``/``evaluate``/``predict``, ``load``, ``seed``, the ``GPUNET_*``
variables) checks what it is given with these functions before any kernel sees it. Each
raises ``ValueError`` or ``TypeError`` (``BackendMismatchError``, a ``TypeError``, for
arrays of two libraries) whose message starts with the object and method
(``"Conv2D.backward: ..."``) and says what was expected and what came.

``where`` names the caller: a string (``"gpunet.seed"``) or a pair ``(object, method)``,
turned into ``"Conv2D.backward"`` only when a message is written, so the checks that pass
cost a few attribute reads and comparisons.

The dtype rule (as Keras): a layer casts its floating or integer input to the floating
dtype of its parameters; a layer without parameters keeps a floating input's dtype and
casts integers to float32. Complex, boolean, object and string data are ``TypeError``.
Parameters and optimizer state never change dtype or array library.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import array_api_compat
import numpy as np

from gpunet import backend

# Array types seen so far (NumPy's, then CuPy's and array-api-strict's when they come).
_ARRAY_TYPES: set[type] = {np.ndarray}
# (dtype class, dtype) -> NumPy's kind letter ('f', 'i', 'u', 'b', 'c', 'O', 'U', ...);
# keyed by class too, so a lookup never compares dtypes of two libraries (which
# array-api-strict warns about).
_KINDS: dict[tuple[type, Any], str] = {}

# What the forward pass produced: ``(shape, dtype, array type)``; backward checks its
# gradient against it (see ``output`` and ``gradient``).
Output = tuple[tuple[int, ...], Any, type]


def place(where: Any) -> str:
    """``where`` as text: ``"Dense.forward"`` for ``(a_dense_layer, "forward")``."""
    if isinstance(where, tuple):
        owner, method = where
        name = owner if isinstance(owner, str) else type(owner).__name__
        return f"{name}.{method}" if method else name
    return str(where)


# --------------------------------------------------------------------------- arrays


def is_array(value: Any) -> bool:
    """Whether ``value`` is an array of a library the array API covers (not a scalar)."""
    kind_ = type(value)
    if kind_ in _ARRAY_TYPES:
        return True
    if isinstance(value, np.generic) or not array_api_compat.is_array_api_obj(value):
        return False
    _ARRAY_TYPES.add(kind_)
    return True


def kind(dtype: Any) -> str:
    """NumPy's kind letter of a dtype of any array library ('f', 'i', 'u', 'b', 'c', ...)."""
    key = (type(dtype), dtype)
    found = _KINDS.get(key)
    if found is None:
        try:
            found = np.dtype(dtype).kind
        except TypeError:  # an array-api-strict dtype, printed "array_api_strict.float32"
            found = np.dtype(str(dtype).rsplit(".", 1)[-1]).kind
        _KINDS[key] = found
    return found


def array(value: Any, where: Any, what: str = "input") -> Any:
    """``value`` if it is an array, else ``TypeError`` naming ``where`` and what came."""
    if not is_array(value):
        raise TypeError(
            f"{place(where)}: expected an array for {what}, got {type(value).__name__} "
            "(make one with gpunet.asarray)"
        )
    return value


def same_library(value: Any, like: Any, where: Any, what: str = "input") -> None:
    """``value`` and ``like`` (a parameter) belong to one array library."""
    if type(value) is type(like):
        return
    got, wanted = backend.library_of(value), backend.library_of(like)
    if got != wanted:
        raise backend.BackendMismatchError(
            f"{place(where)}: {what} is a {got} array but the parameters are {wanted} "
            "arrays; move it with gpunet.asarray(x) on the backend in use"
        )


def floating(
    value: Any, where: Any, dtype: Any = None, what: str = "input", like: Any = None
) -> Any:
    """``value`` as an array of a floating dtype, by the dtype rule.

    Args:
        value: the array.
        where: the caller, for messages.
        dtype: the floating dtype to cast to (a layer's parameter dtype). Default None:
            a floating ``value`` keeps its dtype and integers become float32.
        what: what ``value`` is, for messages (default "input").
        like: an array of the caller (a parameter) whose library ``value`` must share
            (default None: not checked).

    Raises:
        TypeError: for a non-array, complex, boolean, object or string data, or an array
            of another library than ``like``.
    """
    if type(value) is np.ndarray and (like is None or type(like) is np.ndarray):
        current = value.dtype  # the common case, answered from the dtype alone
        if current == dtype or (dtype is None and current.kind == "f"):
            return value
    elif type(value) not in _ARRAY_TYPES:
        array(value, where, what)
    if like is not None and type(value) is not type(like):
        same_library(value, like, where, what)
    current = value.dtype
    if current == dtype:
        return value
    letter = kind(current)
    if dtype is None:
        if letter == "f":
            return value
        xp = backend.namespace(value)
        dtype = backend.resolve_dtype(backend.DEFAULT_FLOAT, xp)
    if letter not in ("f", "i", "u"):
        raise TypeError(
            f"{place(where)}: {what} has dtype {_name(current)}; expected real numbers "
            f"(floating or integer), which are cast to {_name(dtype)}"
        )
    return backend.namespace(value).astype(value, dtype)


def real(value: Any, where: Any, what: str = "input") -> Any:
    """An array of real numbers (floating or integer), kept as it is."""
    array(value, where, what)
    if kind(value.dtype) not in ("f", "i", "u"):
        raise TypeError(
            f"{place(where)}: {what} has dtype {_name(value.dtype)}; expected real numbers "
            "(floating or integer)"
        )
    return value


def _name(dtype: Any) -> str:
    try:
        return np.dtype(dtype).name
    except TypeError:  # an array-api-strict dtype, printed "array_api_strict.float32"
        return str(dtype).rsplit(".", 1)[-1]


def labels(value: Any, where: Any, classes: int, what: str = "target") -> Any:
    """Integer class labels in ``[0, classes)``; integral floats are accepted and cast.

    The range is checked on the host; on CuPy it is not (a check would wait for the
    GPU), and the caller makes an out-of-range label give NaN instead.
    """
    array(value, where, what)
    letter = kind(value.dtype)
    if letter in ("i", "u"):
        pass
    elif letter == "f":
        xp = backend.namespace(value)
        if value.shape[0] and not bool(xp.all(value == xp.round(value))):
            raise TypeError(f"{place(where)}: {what} must hold integer class labels, got fractions")
        value = xp.astype(value, xp.int64)
    else:
        raise TypeError(
            f"{place(where)}: {what} must hold integer class labels, got dtype {_name(value.dtype)}"
        )
    if value.shape[0] and backend.library_of(value) != "cupy":
        xp = backend.namespace(value)
        low, high = int(xp.min(value)), int(xp.max(value))
        if low < 0 or high >= classes:
            raise ValueError(
                f"{place(where)}: {what} labels must be in [0, {classes - 1}] for {classes} "
                f"classes, got labels from {low} to {high}"
            )
    return value


def shape(value: Any, where: Any, expected: Sequence[Any], what: str = "input") -> None:
    """``value.shape`` matches ``expected``.

    Ints must match; names (``"N"``) and None match any size; one ``...`` matches any
    number of axes. The message shows the expected shape with its names:
    ``(N, 3, H, W)``.
    """
    got = tuple(value.shape)
    if Ellipsis in expected:
        cut = list(expected).index(Ellipsis)
        head, tail = expected[:cut], expected[cut + 1 :]
        ok = len(got) >= len(head) + len(tail)
        matched = (*got[: len(head)], *got[len(got) - len(tail) :]) if ok else ()
        named = (*head, *tail)
    else:
        ok = len(got) == len(expected)
        matched, named = got, tuple(expected)
    if ok and all(not isinstance(e, int) or e == g for e, g in zip(named, matched, strict=True)):
        return
    names = ["..." if e is Ellipsis else "?" if e is None else str(e) for e in expected]
    wanted = ", ".join(names) + ("," if len(names) == 1 else "")
    raise ValueError(f"{place(where)}: expected {what} of shape ({wanted}), got shape {got}")


def same_shape(value: Any, reference_shape: Sequence[int], where: Any, what: str) -> None:
    """``value.shape`` equals ``reference_shape`` exactly."""
    got, wanted = tuple(value.shape), tuple(reference_shape)
    if got != wanted:
        raise ValueError(f"{place(where)}: expected {what} of shape {wanted}, got shape {got}")


def nonempty(value: Any, where: Any, what: str = "input") -> None:
    """At least one sample on axis 0."""
    if len(value.shape) == 0:
        raise ValueError(f"{place(where)}: expected {what} with samples on axis 0, got a 0-d array")
    if value.shape[0] == 0:
        raise ValueError(
            f"{place(where)}: {what} is an empty batch (shape {tuple(value.shape)}); "
            "expected at least one sample"
        )


def gradient(grad: Any, where: Any, produced: Output | None, what: str = "gradient") -> Any:
    """A gradient for ``backward``, checked against the forward output ``produced``.

    The gradient must be an array of the output's library and shape; a floating or
    integer gradient of another dtype is cast to the output's dtype.

    Raises:
        RuntimeError: when there was no forward pass (``produced`` is None).
        TypeError: for a non-array, complex or boolean data, or another array library.
        ValueError: for another shape.
    """
    if (
        produced is not None
        and type(grad) is produced[2]
        and grad.dtype == produced[1]
        and grad.shape == produced[0]
    ):
        return grad
    after_forward(produced, where)
    shape_, dtype, array_type = produced
    array(grad, where, f"the {what}")
    if type(grad) is not array_type:
        got, wanted = backend.library_of(grad), _library_of_type(array_type)
        if got != wanted:
            raise backend.BackendMismatchError(
                f"{place(where)}: the {what} is a {got} array but the forward output was a "
                f"{wanted} array"
            )
    same_shape(grad, shape_, where, f"a {what}")
    return floating(grad, where, dtype, what=f"the {what}")


def _library_of_type(array_type: type) -> str:
    module = array_type.__module__.split(".")[0]
    return {"numpy": "numpy", "cupy": "cupy"}.get(module, module)


def after_forward(saved: Any, where: Any) -> None:
    """``backward`` called with nothing saved by a forward pass."""
    if saved is None:
        raise RuntimeError(
            f"{place(where)}: called before forward (there is no forward pass to differentiate)"
        )


# --------------------------------------------------------------------------- settings


def integer(value: Any, where: Any, name: str, minimum: int | None = None) -> int:
    """An int (not a bool, not a float such as 3.7), at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{place(where)}: {name} must be an int, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{place(where)}: {name} must be >= {minimum}, got {value!r}")
    return int(value)


def number(
    value: Any,
    where: Any,
    name: str,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """A finite real number (not a bool or a string) in the given range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{place(where)}: {name} must be a number, got {value!r}")
    value = float(value)
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if not math.isfinite(value) or too_low or too_high:
        left = "(" if low_open or low is None else "["
        right = ")" if high_open or high is None else "]"
        span = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
        raise ValueError(f"{place(where)}: {name} must be a finite number in {span}, got {value!r}")
    return value


def flag(value: Any, where: Any, name: str) -> bool:
    """A bool (``True``/``False``, or NumPy's)."""
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{place(where)}: {name} must be True or False, got {value!r}")
    return bool(value)


def choice(value: Any, where: Any, name: str, options: Sequence[Any]) -> Any:
    """One of ``options``."""
    if value not in options:
        listed = ", ".join(repr(o) for o in options)
        raise ValueError(f"{place(where)}: {name} must be one of {listed}, got {value!r}")
    return value


def instance(value: Any, where: Any, name: str, expected: type, hint: str = "") -> Any:
    """An instance of ``expected`` (a gpunet class), else ``TypeError`` with ``hint``."""
    if not isinstance(value, expected):
        got = (
            type(value).__name__
            if not callable(value) or isinstance(value, type)
            else (f"the function {getattr(value, '__name__', type(value).__name__)}")
        )
        raise TypeError(
            f"{place(where)}: {name} must be a {expected.__module__}.{expected.__qualname__}, "
            f"got {got}" + (f"; {hint}" if hint else "")
        )
    return value
