"""Work in shares, one per core, run at once while the BLAS keeps to one thread.

Independent pieces of work (a convolution's blocks of images) go to ``count`` shares.
Each share runs every step of its pieces on one thread: the kernels and the GEMMs, which
it calls with the BLAS held to one thread, so the data a share makes stays in its core's
cache and nothing waits for another core between steps. Share 0 runs on the calling
thread, the others on a pool of threads kept for the process.

Measured on 2 cores against one thread with the BLAS's own two: W2's second convolution
9.1 -> 6.0 ms forward and 20.5 -> 12 ms backward at batch 64; W6 (inference at batch
256) 55 -> 39 ms per step. A recurrent layer's batch rows go to shares too, each share
running every time step on its rows (``recurrent.row_shares``): for LSTM and GRU steps,
whose cells are heavy enough (W3's training step 0.93-0.97 of the time), not for the
plain RNN's (W4 0.63 -> 0.75 of PyTorch's time: its per-step Python work, which two
threads cannot overlap, outweighs its cell).

Shares are used only while the BLAS's idle threads sleep (``_blas.quiet()``): against
spinning ones they were slower than one thread (W6 68 against 60 ms). Their number is
the BLAS's thread count (the user's setting, e.g. ``OMP_NUM_THREADS``), at most the
cores this process may run on.
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
from collections.abc import Callable, Sequence

from . import _blas

_pool_lock = threading.Lock()
_running = threading.Lock()  # held while shares run at once (the BLAS on one thread)
_pool: tuple[concurrent.futures.ThreadPoolExecutor, int] | None = None


def cores() -> int:
    """The threads to share work over: the BLAS's thread count, at most the cores."""
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        available = os.cpu_count() or 1
    return min(available, _blas.threads())


def count(pieces: int) -> int:
    """How many shares to split ``pieces`` independent pieces into (1: run as one)."""
    if pieces <= 1 or not _blas.quiet():
        return 1
    return min(cores(), pieces)


def _forget_pool() -> None:
    # A forked child has the pool object but none of its threads: start a new one there
    # (and a free lock: the thread that held it is not in the child).
    global _pool, _running
    _pool = None
    _running = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _workers(size: int) -> concurrent.futures.ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None or _pool[1] < size:
            _pool = (concurrent.futures.ThreadPoolExecutor(size, "gpunet-share"), size)
        return _pool[0]


def run(shares: int, task: Callable[[int], None]) -> None:
    """``task(share)`` for each share, at once; the BLAS on one thread meanwhile.

    With one share, ``task(0)`` runs as a plain call, with the BLAS's own threads. Every
    share finishes before the first error, if any, is raised. While another thread's
    shares run, these run one after the other on the calling thread: the BLAS's thread
    count is the process's, and two runs setting and restoring it in turn could leave it
    at one thread.
    """
    if shares <= 1:
        task(0)
        return
    if not _running.acquire(blocking=False):
        _run_in_turn(shares, task)
        return
    try:
        _run_at_once(shares, task)
    finally:
        _running.release()


def _run_in_turn(shares: int, task: Callable[[int], None]) -> None:
    error = None
    for share in range(shares):
        try:
            task(share)
        except Exception as err:  # the others still run, as they would at once
            error = error or err
    if error is not None:
        raise error


def _run_at_once(shares: int, task: Callable[[int], None]) -> None:
    with _blas.libraries().limit(limits=1):
        pool = _workers(shares - 1)
        futures = [pool.submit(task, share) for share in range(1, shares)]
        try:
            task(0)
        finally:
            concurrent.futures.wait(futures)
    for future in futures:
        future.result()


def deal(pieces: Sequence, task: Callable[[int, Sequence], None]) -> None:
    """``task(share, pieces[share::shares])`` for each share: the pieces dealt in turn."""
    shares = count(len(pieces))
    run(shares, lambda share: task(share, pieces[share::shares]))


def total(parts: dict) -> object:
    """The sum of the shares' partial results, in share order (a fixed order)."""
    result = parts[0]
    for share in range(1, len(parts)):
        result += parts[share]
    return result
