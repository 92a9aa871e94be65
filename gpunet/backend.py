"""The seam between gpunet and the array libraries.

This is the only module that knows NumPy from CuPy from array-api-strict. Everything
else asks it for a namespace (``namespace(*arrays)`` or ``xp()``) and writes array-API
code against that.

The backend is chosen by ``GPUNET_BACKEND`` (``numpy`` by default, ``cupy``,
``array_api_strict`` or ``auto``), loaded on first use, or in code by ``set(name)`` and
the context manager ``using(name)``. ``GPUNET_DEVICE`` picks the GPU index for CuPy and
``GPUNET_KERNELS=0`` turns the Numba kernels off (``1``, the default, uses them).

The three variables are checked when gpunet is imported: a value that is not one of the
allowed ones raises ``ValueError`` naming the variable, the allowed values and what came.
An empty value counts as unset.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import array_api_compat
import array_api_compat.numpy
import numpy as np

BACKENDS = ("numpy", "cupy", "array_api_strict", "auto")
DEFAULT_FLOAT = "float32"


class BackendError(RuntimeError):
    """A backend was asked for that cannot be used here; the message says why."""


class BackendMismatchError(TypeError):
    """Arrays of two different array libraries met in one call."""


@dataclass
class _State:
    name: str | None = None  # resolved backend: numpy | cupy | array_api_strict
    xp: ModuleType | None = None
    host_rng: np.random.Generator = field(default_factory=np.random.default_rng)
    seed: int | None = None
    device_rng: Any = None
    device_index: int | None = None  # set in code by set_device; else GPUNET_DEVICE


_state = _State()


# --------------------------------------------------------------------------- choosing


def name() -> str:
    """The name of the backend in use: ``"numpy"``, ``"cupy"`` or ``"array_api_strict"``."""
    if _state.name is None:
        set(_backend_variable())
    return _state.name


def xp() -> ModuleType:
    """The array-API namespace of the backend in use."""
    if _state.xp is None:
        name()
    return _state.xp


def set(backend: str) -> None:  # noqa: A001 - the public name is gpunet.backend.set
    """Switch the backend.

    Args:
        backend: ``"numpy"``, ``"cupy"``, ``"array_api_strict"`` or ``"auto"`` (CuPy when
            it is usable, else NumPy; it prints which one it chose).

    Raises:
        ValueError: for an unknown name.
        BackendError: when the backend cannot be used here (the message says why).
    """
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(
            f"gpunet.backend.set: unknown backend {backend!r}; expected one of "
            f"{', '.join(BACKENDS)}"
        )
    if backend == "auto":
        try:
            namespace_ = _load("cupy")
            chosen = "cupy"
        except BackendError as err:
            namespace_, chosen = _load("numpy"), "numpy"
            print(f"gpunet: backend 'auto' chose numpy ({err})", file=sys.stderr)
        else:
            print(f"gpunet: backend 'auto' chose cupy ({_device_description()})", file=sys.stderr)
    else:
        namespace_, chosen = _load(backend), backend
    if chosen != _state.name:
        _state.device_rng = None
    _state.name, _state.xp = chosen, namespace_


@contextlib.contextmanager
def using(backend: str) -> Iterator[ModuleType]:
    """Use ``backend`` inside a ``with`` block, then restore the previous one."""
    previous = name()
    set(backend)
    try:
        yield _state.xp
    finally:
        set(previous)


def _load(backend: str) -> ModuleType:
    if backend == "numpy":
        return array_api_compat.numpy
    if backend == "array_api_strict":
        try:
            import array_api_strict
        except ImportError as err:
            raise BackendError(
                "backend 'array_api_strict' needs the array-api-strict package: "
                "pip install array-api-strict"
            ) from err
        return array_api_strict
    return _load_cupy()


def _load_cupy() -> ModuleType:
    hint = "install CuPy for your CUDA version: pip install 'gpunet[cuda12]' or 'gpunet[cuda13]'"
    try:
        import cupy
    except ImportError as err:
        raise BackendError(f"CuPy is not installed ({err}); {hint}") from err
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:  # CUDARuntimeError, missing driver libraries, ...
        raise BackendError(
            f"CuPy is installed but no CUDA GPU is usable: {_driver_problem(cupy, err)}"
        ) from err
    if count == 0:
        raise BackendError("CuPy is installed but no CUDA GPU is visible")
    index = _state.device_index if _state.device_index is not None else _device_index(count)
    cupy.cuda.Device(index).use()
    if kernels_enabled():
        _check_numba_cuda(cupy)
    import array_api_compat.cupy

    return array_api_compat.cupy


def _cuda_version(code: int) -> str:
    """``"12.4"`` for CUDA's version code 12040."""
    return f"{code // 1000}.{code % 1000 // 10}"


def _driver_problem(cupy: ModuleType, err: Exception) -> str:
    """Why CuPy cannot reach a GPU, from the driver's and CuPy's CUDA versions."""
    try:
        driver = int(cupy.cuda.runtime.driverGetVersion())
    except Exception:  # no driver library to ask
        driver = 0
    runtime = _cuda_version(int(cupy.cuda.runtime.runtimeGetVersion()))
    if driver == 0:
        return (
            f"no NVIDIA driver is loaded ({err}); install the NVIDIA driver, or use "
            "GPUNET_BACKEND=numpy"
        )
    return (
        f"{err} (the driver supports CUDA {_cuda_version(driver)}, CuPy's runtime is CUDA "
        f"{runtime}: update the driver or install the CuPy built for it)"
    )


def _device_index(count: int) -> int:
    index = _device_variable()
    if not 0 <= index < count:
        raise BackendError(
            f"GPUNET_DEVICE={index} but {count} GPU(s) are visible (indices 0..{count - 1})"
        )
    return index


def device_count() -> int:
    """How many CUDA GPUs CuPy sees (0 where CuPy is missing or no GPU is usable)."""
    try:
        import cupy

        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:  # ImportError, CUDARuntimeError: no usable GPU here
        return 0


def set_device(index: int) -> None:
    """Use GPU ``index`` for the cupy backend from now on (overrides ``GPUNET_DEVICE``).

    Raises:
        BackendError: if CuPy is not usable or there is no GPU ``index``.
    """
    from gpunet import checks

    checks.integer(index, "gpunet.backend.set_device", "index", minimum=0)
    count = device_count()
    if count == 0:
        raise BackendError(f"set_device({index}): no CUDA GPU is usable through CuPy here")
    if not 0 <= index < count:
        raise BackendError(
            f"set_device({index}): {count} GPU(s) are visible (indices 0..{count - 1})"
        )
    import cupy

    _state.device_index = index
    cupy.cuda.Device(index).use()


def _device_description() -> str:
    import cupy

    device = cupy.cuda.Device()
    props = cupy.cuda.runtime.getDeviceProperties(device.id)
    return f"GPU {device.id}: {props['name'].decode()}"


def device_description() -> str:
    """A line saying where arrays of the current backend live."""
    if name() == "cupy":
        return _device_description()
    return "cpu"


def cupy_status() -> str:
    """Whether CuPy is importable and usable here, and why not."""
    try:
        _load_cupy()
    except BackendError as err:
        return f"not usable: {err}"
    return f"usable ({_device_description()})"


# --------------------------------------------------------------------------- arrays


def _namespace_name(namespace_: ModuleType) -> str:
    return namespace_.__name__.rsplit(".", 1)[-1]


_NAMESPACE_BY_TYPE: dict[type, ModuleType] = {np.ndarray: array_api_compat.numpy}


def namespace(*arrays: Any) -> ModuleType:
    """The array-API namespace shared by ``arrays`` (Python scalars and None are skipped).

    With no arrays, the current backend's namespace.

    Raises:
        BackendMismatchError: if the arrays come from two different array libraries.
    """
    found = None
    for array in arrays:
        ns = _NAMESPACE_BY_TYPE.get(type(array))  # the fast path: a known array type
        if ns is None:
            if array is None or isinstance(array, int | float | complex):
                continue
            ns = _namespace_of_new_type(array)
        if found is None:
            found = ns
        elif ns is not found:
            raise BackendMismatchError(
                f"arrays from two backends were mixed in one call: {_namespace_name(found)} "
                f"and {_namespace_name(ns)}; move them onto one with gpunet.asarray(x)"
            )
    return found if found is not None else xp()


def _namespace_of_new_type(array: Any) -> ModuleType:
    if isinstance(array, np.generic):
        ns = array_api_compat.numpy
    else:
        ns = array_api_compat.array_namespace(array)
    _NAMESPACE_BY_TYPE[type(array)] = ns
    return ns


def library_of(array: Any) -> str:
    """``"numpy"``, ``"cupy"`` or ``"array_api_strict"`` for an array."""
    return _namespace_name(namespace(array))


def resolve_dtype(dtype: Any, namespace_: ModuleType | None = None) -> Any:
    """The namespace's dtype for a NumPy dtype, a type like ``np.float32`` or a name."""
    ns = namespace_ if namespace_ is not None else xp()
    if dtype is None:
        dtype = DEFAULT_FLOAT
    if not isinstance(dtype, str):
        try:
            dtype = np.dtype(dtype).name
        except TypeError:
            dtype = str(dtype).rsplit(".", 1)[-1]  # already a namespace dtype
    try:
        return getattr(ns, dtype)
    except AttributeError:
        raise ValueError(f"unknown dtype {dtype!r} for backend {_namespace_name(ns)}") from None


def asarray(x: Any, dtype: Any = None) -> Any:
    """``x`` as an array of the current backend.

    Args:
        x: an array of any backend, a nested list or a scalar.
        dtype: NumPy dtype or name (``"float64"``). Default None: floating data becomes
            float32, integer and boolean data keep their type.
    """
    ns, current = xp(), name()
    if isinstance(x, list | tuple | int | float | bool | np.generic):
        x = np.asarray(x)
    elif library_of(x) != current:
        x = to_numpy(x)
    on_host = isinstance(x, np.ndarray) and current != "numpy"
    if dtype is None:
        is_float = x.dtype.kind == "f" if on_host else ns.isdtype(x.dtype, "real floating")
        if not is_float and not on_host:
            return x
        dtype = DEFAULT_FLOAT if is_float else x.dtype
    target = resolve_dtype(dtype, ns)
    if on_host and current == "array_api_strict":
        x = np.asarray(x, dtype=_numpy_dtype(target), order="C")  # keeps 0-d arrays 0-d
    return ns.asarray(x, dtype=target)


def _numpy_dtype(dtype: Any) -> np.dtype:
    try:
        return np.dtype(dtype)
    except TypeError:  # an array-api-strict dtype, printed as "array_api_strict.float32"
        return np.dtype(str(dtype).rsplit(".", 1)[-1])


def to_numpy(x: Any) -> np.ndarray:
    """A NumPy copy (or view, for NumPy input) of an array of any backend."""
    if isinstance(x, np.ndarray | np.generic):
        return np.asarray(x)
    library = library_of(x)
    if library == "cupy":
        return x.get()
    if library == "array_api_strict":
        return np.from_dlpack(x).copy()
    return np.asarray(x)


def is_strict(namespace_: ModuleType) -> bool:
    """Whether the namespace is array-api-strict (no extensions may be used)."""
    return namespace_.__name__ == "array_api_strict"


# --------------------------------------------------------------------------- randomness


def seed(value: int) -> None:
    """Seed every source of randomness gpunet draws from.

    Parameter initialisation and shuffling draw from a host-side NumPy generator, so a
    seed gives the same initial model on every backend; dropout masks are drawn on the
    device from a generator derived from the same seed.

    Args:
        value: an int >= 0.

    Raises:
        TypeError: for anything but an int (a string, a float, a bool).
        ValueError: for a negative int.
    """
    from gpunet import checks  # checks imports this module

    value = checks.integer(value, "gpunet.seed", "the seed", minimum=0)
    _state.seed = value
    _state.host_rng = np.random.default_rng(value)
    _state.device_rng = None


def host_rng() -> np.random.Generator:
    """The seeded host-side NumPy generator (initialisation, shuffling)."""
    return _state.host_rng


def get_rng_state() -> dict:
    """The state of the host generator, as plain Python data (for checkpoints)."""
    return _state.host_rng.bit_generator.state


def set_rng_state(state: dict) -> None:
    """Restore a state returned by ``get_rng_state``."""
    _state.host_rng.bit_generator.state = state


def random_uniform(shape: tuple[int, ...], dtype: Any) -> Any:
    """Uniform [0, 1) numbers drawn on the current backend's device."""
    ns, current = xp(), name()
    if _state.device_rng is None:
        device_seed = None if _state.seed is None else [_state.seed, 1]
        if current == "cupy":
            import cupy

            _state.device_rng = cupy.random.default_rng(
                None
                if device_seed is None
                else np.random.SeedSequence(device_seed).generate_state(1)[0]
            )
        else:
            _state.device_rng = np.random.default_rng(device_seed)
    np_dtype = _numpy_dtype(resolve_dtype(dtype, ns))
    sample = _state.device_rng.random(shape, dtype=np_dtype)
    return sample if current != "array_api_strict" else ns.asarray(sample)


# --------------------------------------------------------------------------- missing ops


def scatter_add(target: Any, indices: Any, values: Any) -> Any:
    """``target[indices[i]] += values[i]`` along axis 0, repeated indices accumulating.

    The array API has no scatter-add; this adds one for every backend. Returns the
    updated array (in place on NumPy and CuPy, a new array on array-api-strict).
    """
    library = library_of(target)
    if library == "numpy":
        np.add.at(target, indices, values)
        return target
    if library == "cupy":
        import cupyx

        cupyx.scatter_add(target, indices, values)
        return target
    ns = namespace(target)
    host = to_numpy(target)
    np.add.at(host, to_numpy(indices), to_numpy(values))
    return ns.asarray(host)


def kernels_enabled() -> bool:
    """Whether Numba kernels may be used: ``GPUNET_KERNELS`` is ``1`` or unset, not ``0``.

    Read on every call, so a test can switch it.

    Raises:
        ValueError: for any other value of ``GPUNET_KERNELS``.
    """
    value = os.environ.get("GPUNET_KERNELS")
    if value == "0":
        return False
    if value is None or value == "1" or value == "":
        return True
    raise _variable_error("GPUNET_KERNELS", value, "0 (reference code only) or 1 (the default)")


def kernel(op: str, namespace_: ModuleType) -> Any:
    """The Numba kernel for ``op`` on this namespace, or None (then use the reference)."""
    if not kernels_enabled():
        return None
    key = (op, namespace_.__name__)
    if key not in _KERNEL_CACHE:
        from gpunet import kernels

        if kernels.target_of(namespace_) == "cuda":
            _check_numba_cuda()

        _KERNEL_CACHE[key] = kernels.lookup(op, namespace_)
    return _KERNEL_CACHE[key]


def _check_numba_cuda(cupy: ModuleType | None = None) -> None:
    """numba.cuda imports; given CuPy (with a GPU), it also sees that GPU and is built for
    a CUDA version the driver supports (else its kernels would not load)."""
    try:
        from numba import cuda
    except Exception as err:  # numba-cuda missing, or built against another NumPy
        raise BackendError(
            f"the CUDA kernels need numba.cuda, which does not import here ({err!r}); "
            f"install numba-cuda for this NumPy ({np.__version__}), or set GPUNET_KERNELS=0 "
            f"to run on CuPy's own operations"
        ) from err
    if cupy is None:
        return
    if not cuda.is_available():
        reason = str(cuda.cuda_error() or "no reason given").strip().splitlines()[0]
        raise BackendError(
            f"numba-cuda does not see the GPU that CuPy uses ({reason}); the CUDA kernels "
            "need it: install numba-cuda for this driver, or set GPUNET_KERNELS=0 to run on "
            "CuPy's own operations"
        )
    numba_major = int(cuda.runtime.get_version()[0])
    driver = int(cupy.cuda.runtime.driverGetVersion())
    if numba_major > driver // 1000:
        raise BackendError(
            f"numba-cuda is built for CUDA {numba_major} but the driver supports CUDA "
            f"{_cuda_version(driver)} (CuPy: CUDA "
            f"{_cuda_version(int(cupy.cuda.runtime.runtimeGetVersion()))}), so its kernels "
            f"would not load: install numba-cuda for CUDA {driver // 1000} "
            f"(pip install 'gpunet[cuda{driver // 1000}]'), or set GPUNET_KERNELS=0 to run "
            "on CuPy's own operations"
        )


# (op, namespace name) -> kernel or None; asked on every call of an op, so remembered
_KERNEL_CACHE: dict[tuple[str, str], Any] = {}


# --------------------------------------------------------------------------- variables


def _variable_error(variable: str, value: str, expected: str) -> ValueError:
    return ValueError(f"{variable} must be {expected}, got {value!r}")


def _backend_variable() -> str:
    value = os.environ.get("GPUNET_BACKEND") or "numpy"
    if value not in BACKENDS:
        raise _variable_error("GPUNET_BACKEND", value, f"one of {', '.join(BACKENDS)}")
    return value


def _device_variable() -> int:
    value = os.environ.get("GPUNET_DEVICE") or "0"
    if not (value.isascii() and value.isdigit()):
        raise _variable_error("GPUNET_DEVICE", value, "a GPU index, an int >= 0")
    return int(value)


def check_environment() -> None:
    """Check ``GPUNET_BACKEND``, ``GPUNET_KERNELS`` and ``GPUNET_DEVICE`` (at import).

    Raises:
        ValueError: naming the first variable whose value is not allowed.
    """
    _backend_variable()
    kernels_enabled()
    _device_variable()


check_environment()
