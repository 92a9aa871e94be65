"""gpunet's CPU threads: one pool, one rule for how many threads a piece of work gets.

gpunet parallelises its CPU work itself. Independent pieces of work (blocks of images, a
recurrent layer's batch rows, slices of a parameter) are split into ``count`` parts; part 0
runs on the calling thread and the others on a pool of threads that gpunet keeps. Each
part runs GIL-free Numba kernels and single-threaded BLAS calls on its own data, so the
data a part makes stays in its core's cache and no part waits for another between steps.

The BLAS keeps a pool of its own. Two pools on the same cores slow each other down: an
idle OpenBLAS worker spins for a while after each threaded call (2^28 cycles by
default), taking a core from whatever runs next. So every BLAS call gpunet makes runs on
one thread (``blas_single_threaded``, held by ``run`` even for a single part), and
gpunet's GEMMs are split into parts by the rule like any other work (``matmul``): the
BLAS's own pool stays asleep. The BLAS's thread count is the library's, process-wide, so
while gpunet's call runs another thread's BLAS calls run on one thread too, as under
scikit-learn's threadpoolctl limits; it is restored when the last of gpunet's calls in
progress returns. Nothing is changed at import and nothing outlives gpunet's own calls.

The rule (``count``): a piece of work gets one thread per ``MIN_WORK`` units (about a
millisecond of one core: a hand-off to another thread must be worth its cost), at most
one per independent piece, and at most ``threads()``: the cores this process may run on,
no more than the BLAS's own thread count (so ``OMP_NUM_THREADS=1`` or a threadpoolctl
limit around gpunet's calls keep gpunet on one thread too), or what
``set_num_threads`` asked for.

The split depends only on the sizes and the thread count, never on timing, so results are
bit-identical from run to run, and the same whether two threads train at once or not.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import functools
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

# Work is counted in units of about a nanosecond of one core: an element a memory-bound
# kernel touches, or 32 multiply-adds of a GEMM. A part gets at least this much (about a
# millisecond): handing work to another thread and waiting for it costs tens to hundreds
# of microseconds (a thread wakes through the kernel), so smaller work stays on one thread.
MIN_WORK = 1 << 20
# OpenBLAS runs a GEMM of fewer multiply-adds than this on the calling thread.
BLAS_THREADING_MIN = 1 << 18

_requested: int | None = None  # set_num_threads
_lock = threading.Lock()
_blas_depth = 0
_blas_saved: list[tuple[Callable[[int], int], int]] = []  # (setter, count to restore)
_pool: concurrent.futures.ThreadPoolExecutor | None = None
_pool_size = 0
_inside = threading.local()  # set on a thread while it runs a part


# --------------------------------------------------------------------------- threads


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def set_num_threads(count: int | None) -> None:
    """Use ``count`` threads for gpunet's CPU work (None: the default, see ``threads``).

    Raises:
        ValueError: for a count below 1.
    """
    global _requested
    if count is not None:
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"set_num_threads: expected an int >= 1 or None, got {count!r}")
    _requested = count


def threads() -> int:
    """How many threads gpunet's CPU work may use now."""
    if _requested is not None:
        return _requested
    return max(1, min(cores(), _blas_threads()))


def describe() -> str:
    """One line for ``python -m gpunet info``."""
    if _requested is not None:
        why = "set_num_threads"
    else:
        why = f"{cores()} core(s) available, the BLAS on {_blas_threads()} thread(s)"
    return (
        f"{threads()} thread(s) for gpunet's kernels ({why}); the BLAS runs on one thread "
        "while gpunet's calls run (restored after); Numba's thread pool is not used"
    )


# --------------------------------------------------------------------------- the BLAS


@functools.cache
def _controller() -> Any:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


_known: tuple[list[Any], list[Callable[[int], int]]] | None = None


def _scan() -> tuple[list[Any], list[Callable[[int], int]]]:
    """The BLAS libraries in the process, and for each a function that sets its thread
    count and returns the previous one."""
    global _known
    if _known is None:
        libraries = list(_controller().select(user_api="blas").lib_controllers)
        _known = (libraries, [_setter(lib) for lib in libraries])
    return _known


def _setter(lib: Any) -> Callable[[int], int]:
    # OpenBLAS 0.3.27+ has openblas_set_num_threads_local, which returns the previous
    # count and takes effect from any thread; its plain setter, called from a thread other
    # than the one that last set it, can be ignored. Other libraries: threadpoolctl's.
    local = getattr(lib.dynlib, "openblas_set_num_threads_local", None)
    if local is not None:
        local.argtypes, local.restype = [ctypes.c_int], ctypes.c_int
        return local

    def set_count(count: int) -> int:
        previous = lib.get_num_threads()
        lib.set_num_threads(count)
        return previous

    return set_count


def _libraries() -> list[Any]:
    return _scan()[0]


def rescan_blas() -> None:
    """Look for BLAS libraries again (after a module that loads another one is imported)."""
    global _known
    _controller.cache_clear()
    _known = None


def _blas_threads() -> int:
    if _blas_depth and _blas_saved:
        return max(count for _, count in _blas_saved)
    counts = [lib.get_num_threads() for lib in _libraries()]
    counts = [c for c in counts if c]
    return max(counts) if counts else cores()


@contextlib.contextmanager
def blas_single_threaded() -> Iterator[None]:
    """Run the BLAS on one thread inside the block; restore it after the outermost one.

    The setting is the BLAS library's own, so it holds for every thread of the process
    while any thread is inside (as threadpoolctl's limits do). Re-entrant and safe from
    several threads at once: the first entry saves and sets the count, the last exit
    restores it.
    """
    global _blas_depth, _blas_saved
    with _lock:
        if _blas_depth == 0:
            _blas_saved = [(set_count, set_count(1)) for set_count in _scan()[1]]
        _blas_depth += 1
    try:
        yield
    finally:
        with _lock:
            _blas_depth -= 1
            if _blas_depth == 0:  # the libraries saved, even if a rescan found more since
                for set_count, count in _blas_saved:
                    set_count(count)
                _blas_saved = []


# --------------------------------------------------------------------------- the rule


def count(pieces: int, work: float) -> int:
    """The number of threads for ``pieces`` independent pieces totalling ``work`` units.

    The one rule every kernel family uses (see the module docstring).
    """
    if pieces <= 1 or work < 2 * MIN_WORK or getattr(_inside, "active", False):
        return 1  # without asking the libraries for their thread counts: small work is common
    return max(1, min(threads(), pieces, int(work // MIN_WORK)))


def bounds(total: int, parts: int) -> list[int]:
    """``parts + 1`` boundaries that split ``range(total)`` into near-equal runs."""
    return [total * part // parts for part in range(parts + 1)]


# --------------------------------------------------------------------------- running


def _forget_pool() -> None:
    # A forked child has the pool object but none of its threads, nor the lock's holder.
    global _pool, _pool_size, _lock, _blas_depth, _blas_saved
    _pool, _pool_size = None, 0
    _lock = threading.Lock()
    _blas_depth, _blas_saved = 0, []


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _workers(size: int) -> concurrent.futures.ThreadPoolExecutor:
    global _pool, _pool_size
    with _lock:
        if _pool is None or _pool_size < size:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool, _pool_size = concurrent.futures.ThreadPoolExecutor(size, "gpunet"), size
        return _pool


def _in_part(task: Callable[[int], None], part: int) -> None:
    _inside.active = True
    try:
        task(part)
    finally:
        _inside.active = False


def run(parts: int, task: Callable[[int], None], blas: bool = True) -> None:
    """``task(part)`` for each of ``parts`` parts, at once.

    Args:
        parts: how many parts (from ``count``).
        task: the work of one part, given its index.
        blas: the task calls the BLAS, which then runs on one thread (default True).

    Every part started finishes before the first error, if any, is raised. With one part,
    or called from inside a part, the parts run one after the other on the calling
    thread.
    """
    with blas_single_threaded() if blas else contextlib.nullcontext():
        if parts <= 1 or getattr(_inside, "active", False):
            for part in range(max(parts, 1)):
                task(part)
            return
        pool = _workers(parts - 1)
        futures = [pool.submit(_in_part, task, part) for part in range(1, parts)]
        try:
            _in_part(task, 0)
        finally:
            concurrent.futures.wait(futures)
    for future in futures:
        future.result()


def run_rows(rows: int, work: float, task: Callable[[int, int], None], blas: bool = False) -> None:
    """``task(start, stop)`` over ``range(rows)`` split by the rule into runs of rows.

    ``blas``: the task calls the BLAS (default False: kernels only).
    """
    parts = count(rows, work)
    if parts == 1 and not blas:
        task(0, rows)
        return
    edges = bounds(rows, parts)
    run(parts, lambda part: task(edges[part], edges[part + 1]), blas)


def matmul(a: Any, b: Any, out: Any = None) -> Any:
    """``a @ b`` for 2-D NumPy arrays, the rows (or columns) of the product split by the rule.

    Each part is a single-threaded BLAS call, so the BLAS's own pool never wakes.
    """
    m, k = a.shape
    n = b.shape[1]
    if out is None:
        out = np.empty((m, n), dtype=np.result_type(a, b))
    if m * n * k < BLAS_THREADING_MIN:  # the BLAS runs it on the calling thread anyway
        return np.matmul(a, b, out=out)
    by_rows = m >= n
    # Its multiply-adds and the elements it reads and writes: a product with a short inner
    # dimension (an input projection, 3200 x 32 x 512) is mostly memory traffic.
    parts = count(m if by_rows else n, m * n * k / 32 + m * k + k * n + m * n)
    edges = bounds(m if by_rows else n, parts)

    def product(part: int) -> None:
        span = slice(edges[part], edges[part + 1])
        if by_rows:
            np.matmul(a[span], b, out=out[span])
        else:
            np.matmul(a, b[:, span], out=out[:, span])

    run(parts, product)
    return out


def total(parts: dict[int, Any]) -> Any:
    """The sum of per-part results in part order (a fixed order, so runs repeat exactly)."""
    result = parts[0]
    for part in range(1, len(parts)):
        result = result + parts[part]
    return result
