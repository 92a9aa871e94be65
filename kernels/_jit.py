"""The JIT helper every CPU kernel compiles through.

``cpu_kernel`` compiles a function with Numba as a single-threaded, GIL-free kernel:

* ``nogil``: gpunet runs kernels on its own threads, several at once (``_parallel``);
  it never starts Numba's own thread pool (no ``parallel=True``), so Numba's threading
  layer, OpenMP's fork-safety and ``NUMBA_NUM_THREADS`` do not concern gpunet.
* ``error_model="numpy"``: no division-by-zero checks in index arithmetic (every divisor
  is a validated size or stride >= 1), so the inner loops can vectorise.
* ``cache=True`` where Numba can write a cache (next to the source, or in the user's cache
  folder); on a read-only install with no writable cache folder the kernel compiles on
  each first use instead. ``cache_report()`` says which happened.

Compilation happens on the first call, never at import.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numba

OPTIONS = {"nogil": True, "error_model": "numpy"}

_uncached: dict[str, str] = {}  # kernel name -> why it has no disk cache
_cached: dict[str, str] = {}  # kernel name -> its cache folder


def cpu_kernel(function: Callable | None = None, **options: Any) -> Any:
    """Decorator: ``function`` as a serial, GIL-free Numba kernel, cached where possible.

    Args:
        function: the Python function to compile.
        **options: extra ``numba.njit`` options (``fastmath={"contract"}``, ...).
    """
    if function is None:
        return lambda f: cpu_kernel(f, **options)
    settings = {**OPTIONS, **options}
    name = f"{function.__module__}.{function.__qualname__}"
    try:
        dispatcher = numba.njit(cache=True, **settings)(function)
    except RuntimeError as err:  # "cannot cache function ...: no locator available"
        _uncached[name] = str(err)
        return numba.njit(cache=False, **settings)(function)
    _cached[name] = _cache_folder(dispatcher)
    return dispatcher


def _cache_folder(dispatcher: Any) -> str:
    cache = getattr(dispatcher, "_cache", None)
    return str(getattr(cache, "_cache_path", "") or "unknown folder")


def cache_report() -> str:
    """Where the compiled kernels loaded so far are cached, in one line."""
    if not _cached and not _uncached:
        return "no kernel defined yet"
    parts = []
    if _cached:
        folders = sorted(set(_cached.values()))
        parts.append(f"{len(_cached)} kernel(s) cached on disk in {', '.join(folders)}")
    if _uncached:
        parts.append(
            f"{len(_uncached)} kernel(s) NOT cached (no writable cache folder: set "
            "NUMBA_CACHE_DIR to keep them): they compile on each first use"
        )
    return "; ".join(parts)
