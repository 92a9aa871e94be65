"""Numba kernels for gpunet, installed as ``gpunet.kernels``.

Each family module writes its scalar math once as ``@numba.njit(inline="always")``
helpers and calls them from a CPU kernel (``@njit``) and a CUDA kernel (``@cuda.jit``).
This package never imports gpunet; its modules import NumPy, Numba (numba-cuda where
installed), threadpoolctl and, for the recurrent products, SciPy's BLAS. Importing the
package itself loads none of them and compiles nothing: a family module is imported by
the first ``lookup`` of one of its ops, and its kernels are compiled on first use.

``lookup(op, xp)`` returns the implementation of ``op`` for the array namespace ``xp``
(``"cpu"`` for NumPy, ``"cuda"`` for CuPy), or None when there is none.
"""

from __future__ import annotations

import importlib
from typing import Any

# op name -> (module, attribute prefix). Each module defines ``<prefix>_cpu`` and
# ``<prefix>_cuda`` wrappers that take and return arrays of their library.
_REGISTRY: dict[str, str] = {}


def register(op: str, module: str) -> None:
    """Declare that ``module`` (relative to this package) implements ``op``."""
    _REGISTRY[op] = module


def target_of(xp: Any) -> str | None:
    """``"cpu"`` for a NumPy namespace, ``"cuda"`` for a CuPy one, else None."""
    name = getattr(xp, "__name__", "")
    if name.endswith("numpy"):
        return "cpu"
    if name.endswith("cupy"):
        return "cuda"
    return None


def lookup(op: str, xp: Any) -> Any:
    """The implementation of ``op`` for namespace ``xp``, or None."""
    target = target_of(xp)
    module_name = _REGISTRY.get(op)
    if target is None or module_name is None:
        return None
    try:
        module = importlib.import_module(f".{module_name}", __name__)
    except ValueError as err:  # Numba checks its NUMBA_* variables when it is imported
        raise ImportError(
            f"gpunet's kernels need Numba, which refused to import: {err} (check the "
            "NUMBA_* environment variables; gpunet does not use Numba's thread pool, so "
            "NUMBA_NUM_THREADS and NUMBA_THREADING_LAYER can be left unset)"
        ) from err
    return getattr(module, f"{op}_{target}", None)


def available() -> dict[str, str]:
    """Every registered op and the module implementing it."""
    return dict(_REGISTRY)
