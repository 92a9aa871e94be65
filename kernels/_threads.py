"""Idle threads that sleep: the BLAS's and Numba's, so that either can use every core.

A recurrent layer alternates a threaded GEMM (the BLAS's threads) with a short pointwise
kernel (Numba's threads), fifty times per sequence. Each pool's idle threads must leave
the cores to the other: an OpenMP worker that spins while the GEMM runs doubled the GEMM's
time (W3's forward GEMMs 8.9 -> 17.5 ms), and OpenBLAS's worker spinning through the cell
made the split cell slower than one thread (6.8 -> 7.9 ms).

So ``import gpunet``, before NumPy or an OpenMP runtime loads, calls ``prepare()``, which
sets (unless they are set already) ``OPENBLAS_THREAD_TIMEOUT`` to ``_blas.SPIN`` and
``OMP_WAIT_POLICY=passive`` for the OpenMP runtime behind Numba's ``omp`` threading
layer. With both, W3's forward cells over 50 steps took 4.6-5.3 ms on two threads
against 6.7-7.9 ms on one, the GEMMs unchanged (2 cores).

``split_pays()`` says whether both hold now, so that a short kernel may run on Numba's
threads: the BLAS's idle threads sleep (``_blas.quiet()``), and Numba's layer is
``workqueue`` (its workers wait on a condition variable) or ``omp`` with the passive
policy read when the runtime loaded: the policy was passive before ``import gpunet``,
or an OpenMP runtime has loaded since (Numba's, once its layer starts). A runtime loaded
before, such as PyTorch's own copy of libgomp, leaves Numba's to load later and read the
policy; if Numba's had loaded before, nothing new loads and the cells keep to one
thread. Numba's ``tbb`` layer is not counted: its waits are not measured.
"""

from __future__ import annotations

import os

from . import _blas  # imports neither NumPy nor Numba: prepare() runs before them

_POLICY = "OMP_WAIT_POLICY"
_passive_before_gpunet: bool | None = None


def prepare() -> None:
    """Set the idle-thread policies in the environment (a value already there is kept).

    Call it before NumPy and any OpenMP runtime load; ``import gpunet`` does.
    """
    global _passive_before_gpunet
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", str(_blas.SPIN))
    _passive_before_gpunet = _passive()
    os.environ.setdefault(_POLICY, "passive")


def _passive() -> bool:
    return os.environ.get(_POLICY, "").strip().lower() == "passive"


def numba_workers_sleep() -> bool:
    """Numba's idle workers sleep rather than spin (see the module docstring)."""
    import numba

    numba.get_num_threads()  # starts Numba's threading layer if nothing has yet
    layer = numba.threading_layer()
    if layer == "workqueue":
        return True
    if layer != "omp" or not _passive():
        return False
    return bool(_passive_before_gpunet) or _blas.openmp_loaded_since()


_threadsafe: bool | None = None


def numba_threadsafe() -> bool:
    """Numba's parallel kernels may be called from several threads at once: its
    threading layer is ``omp`` or ``tbb`` (``workqueue`` aborts the process). Asked
    once per process: the layer, once started, stays."""
    global _threadsafe
    if _threadsafe is None:
        import numba

        numba.get_num_threads()  # starts Numba's threading layer if nothing has yet
        _threadsafe = numba.threading_layer() in ("omp", "tbb")
    return _threadsafe


def split_pays() -> bool:
    """A short kernel between two BLAS calls may run on all of Numba's threads."""
    return _blas.quiet() and numba_workers_sleep()
