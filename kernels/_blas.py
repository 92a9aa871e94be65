"""The BLAS under NumPy: how many threads it runs, and whether its idle threads spin.

OpenBLAS keeps its worker threads spinning after each threaded call, by default for
2^28 cycles (about 0.1 s), before they sleep. A training step calls a threaded GEMM
every few milliseconds, so they never sleep, and a spinning thread takes half of a core
from whatever shares that core with it. On the 2-core test machine, whose two cores were
at times the two hardware threads of one core, that made gpunet's own single-threaded
kernels up to 3.9x slower and a CNN training step (W2) 50 ms instead of 36 ms.

``OPENBLAS_THREAD_TIMEOUT`` (log2 of the cycles) shortens the spin. OpenBLAS reads it when
it loads, so ``import gpunet`` sets it to ``SPIN`` (unless it is set already) before it
imports NumPy (``_threads.prepare``); where NumPy, and OpenBLAS with it, was loaded first,
``quieten()`` has OpenBLAS read it again and restarts its threads, as OpenBLAS itself does
around a ``fork()``. With the spin at most ``QUIET``, work is split into shares on several
threads (``_shares``) and a recurrent cell runs on Numba's threads between its GEMMs
(``_threads``); against spinning BLAS threads either was slower than one thread.

``SPIN`` is OpenBLAS's least, 2^4 cycles: the threads sleep as soon as a call ends. While
gpunet's kernels kept to one thread between GEMMs, spins of 2^4 to 2^22 gave W2, W3 and W6
within 2 ms of each other; a cell split over two threads right after a GEMM needs the
short spin: W3's 50 forward cells took 4.6-5.7 ms with spins of 2^4 to 2^16 and 7.9 ms
with 2^20, against 6.7-7.9 ms on one thread.
"""

from __future__ import annotations

import functools
import os
from typing import Any

SPIN = 4  # what ``import gpunet`` sets: idle threads sleep as soon as a call ends
QUIET = 16  # the longest spin (2^16 cycles, ~26 us at 2.5 GHz) that counts as quiet
DEFAULT_SPIN = 28  # OpenBLAS's THREAD_TIMEOUT when the variable is unset


@functools.cache
def _loaded() -> Any:
    # threadpoolctl's scan of the libraries loaded now; ``import gpunet`` makes it
    # (through ``quieten``), so it shows what was loaded before gpunet.
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


@functools.cache
def libraries() -> Any:
    """The loaded BLAS libraries (a ``threadpoolctl`` selection, empty when none is found)."""
    return _loaded().select(user_api="blas")


def _openmp_paths(controller: Any) -> set[str]:
    return {c.filepath for c in controller.select(user_api="openmp").lib_controllers}


@functools.cache
def openmp_loaded_since() -> bool:
    """An OpenMP runtime is loaded now that was not at ``import gpunet``, so it read the
    environment ``_threads.prepare`` set. The first answer is kept: ask once the runtime
    in question has loaded."""
    from threadpoolctl import ThreadpoolController

    return bool(_openmp_paths(ThreadpoolController()) - _openmp_paths(_loaded()))


def threads() -> int:
    """The BLAS's thread count now (1 where no BLAS is found)."""
    counts = [c.get_num_threads() for c in libraries().lib_controllers]
    return max(1, min(counts)) if counts else 1


def idle_spin(controller: Any) -> int | None:
    """log2 of the cycles an idle OpenBLAS thread spins, or None: not OpenBLAS, not its own
    pthreads server (an OpenMP build waits as the OpenMP runtime says), or unknown."""
    if controller.internal_api != "openblas":
        return None
    if getattr(controller, "threading_layer", "pthreads") != "pthreads":
        return None
    read = getattr(controller.dynlib, "openblas_thread_timeout", None)
    if read is None:
        return None
    value = int(read())
    return min(max(value, 4), 30) if value > 0 else DEFAULT_SPIN  # OpenBLAS's own clamp


def quieten() -> None:
    """Have every loaded OpenBLAS use ``OPENBLAS_THREAD_TIMEOUT`` (``SPIN`` unless set).

    An OpenBLAS whose spin differs re-reads its environment and stops its threads, which
    it starts again at its next threaded call. Call it while no other thread is inside a
    BLAS call (``import gpunet`` does). A library without those entry points is left as
    it is, and ``quiet()`` then says so.
    """
    wanted = int(os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", str(SPIN)))
    for controller in libraries().lib_controllers:
        spin = idle_spin(controller)
        read_env = getattr(controller.dynlib, "openblas_read_env", None)
        stop_threads = getattr(controller.dynlib, "blas_thread_shutdown_", None)
        if spin is None or spin == min(max(wanted, 4), 30) or not (read_env and stop_threads):
            continue
        read_env()
        stop_threads()
    quiet.cache_clear()


@functools.cache
def quiet() -> bool:
    """Every BLAS in the process is OpenBLAS with idle threads that sleep within 2^QUIET cycles."""
    controllers = libraries().lib_controllers
    spins = [idle_spin(c) for c in controllers]
    return bool(spins) and all(s is not None and s <= QUIET for s in spins)


def describe() -> str:
    """One line per BLAS library, for ``python -m gpunet info``."""
    lines = []
    for c in libraries().lib_controllers:
        spin = idle_spin(c)
        idle = "idle threads: unknown" if spin is None else f"idle threads spin 2^{spin} cycles"
        name, count = c.filepath.rsplit("/", 1)[-1], c.get_num_threads()
        lines.append(f"{c.internal_api} {c.version} ({name}), {count} threads, {idle}")
    if not lines:
        return "no BLAS found by threadpoolctl"
    if not quiet():
        lines.append(
            f"gpunet's kernels keep to one thread: the BLAS's idle threads may spin "
            f"(OPENBLAS_THREAD_TIMEOUT above {QUIET}, or not OpenBLAS)"
        )
    return "; ".join(lines)
