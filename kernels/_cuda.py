"""What every CUDA kernel family needs, written once: Numba's CUDA module, the stream, the launch.

* ``numba_cuda()`` imports ``numba.cuda`` on first use (never at import: it costs about
  half a second and may not import at all where numba-cuda does not match NumPy), and
  says clearly why when it cannot.
* ``current_stream()`` is CuPy's current stream as a Numba stream, so kernels queue
  behind the CuPy work that produced their inputs.
* ``launch(kernel, size, *args)`` runs a kernel with one thread per element over
  ``size`` elements: the launch configuration, CuPy arrays viewed as Numba device arrays
  WITHOUT the stream synchronisation Numba performs by default when it consumes a
  ``__cuda_array_interface__`` (safe: producer and consumer share the stream), no
  low-occupancy warning for small launches, and a count of launches for the tests.

Under Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) the same calls take NumPy
arrays, which is how the tests run every CUDA kernel without a GPU.
"""

from __future__ import annotations

import contextlib
import math
import threading
import warnings
from collections.abc import Iterator
from typing import Any

THREADS_PER_BLOCK = 256

_streams: dict[int, Any] = {}
_counter = threading.local()


def numba_cuda() -> Any:
    """``numba.cuda``, imported now.

    Raises:
        ImportError: saying why it does not import (numba-cuda missing, or built for
            another NumPy) and what to do.
    """
    try:
        from numba import cuda
    except Exception as err:  # ImportError, or AttributeError from a NumPy mismatch
        import numpy

        raise ImportError(
            f"the CUDA kernels need numba.cuda, which does not import here ({err!r}); "
            f"install numba-cuda built for this NumPy ({numpy.__version__}), or set "
            "GPUNET_KERNELS=0 to run on CuPy's own operations"
        ) from err
    return cuda


def current_stream() -> Any:
    """CuPy's current stream, wrapped once per pointer as a Numba external stream."""
    import cupy

    pointer = cupy.cuda.get_current_stream().ptr
    stream = _streams.get(pointer)
    if stream is None:
        stream = _streams[pointer] = numba_cuda().external_stream(pointer)
    return stream


def _is_cupy(value: Any) -> bool:
    return type(value).__module__.startswith("cupy")


def device_arrays(*arrays: Any) -> tuple[Any, ...]:
    """Kernel arguments with every CuPy array viewed as a Numba device array, unsynchronised.

    Scalars, tuples and NumPy arrays (the CUDA simulator's inputs) pass unchanged.
    """
    if not any(_is_cupy(arg) for arg in arrays):
        return arrays
    cuda = numba_cuda()
    return tuple(cuda.as_cuda_array(arg, sync=False) if _is_cupy(arg) else arg for arg in arrays)


def blocks_for(size: int, threads: int = THREADS_PER_BLOCK) -> int:
    """Blocks of ``threads`` threads that cover ``size`` elements (at least one)."""
    return max(1, math.ceil(size / threads))


def launch(
    kernel: Any,
    size: int,
    *args: Any,
    stream: Any = None,
    threads: int = THREADS_PER_BLOCK,
    blocks: int | None = None,
) -> None:
    """Run ``kernel`` with one thread per element over ``size`` elements.

    Args:
        kernel: a ``@cuda.jit`` kernel.
        size: the elements to cover; the kernel returns early for indices past it.
        *args: the kernel's arguments (CuPy arrays, or NumPy arrays under the simulator).
        stream: a Numba stream (default None: CuPy's current stream when an argument is a
            CuPy array, else the default stream).
        threads: threads per block (default 256).
        blocks: the grid size (default: enough blocks of ``threads`` to cover ``size``).
    """
    if stream is None:
        stream = current_stream() if any(_is_cupy(arg) for arg in args) else 0
    arrays = device_arrays(*args)
    grid = blocks_for(size, threads) if blocks is None else blocks
    with warnings.catch_warnings():
        # Small problems launch few blocks; Numba's low-occupancy warning says nothing new.
        warnings.filterwarnings("ignore", message=".*under-utilization")
        kernel[grid, threads, stream](*arrays)
    if getattr(_counter, "active", None) is not None:
        _counter.active.append(getattr(kernel, "__name__", repr(kernel)))


@contextlib.contextmanager
def counting_launches() -> Iterator[list[str]]:
    """Inside the block, the names of the kernels this thread launches, in order."""
    previous = getattr(_counter, "active", None)
    _counter.active = launched = []
    try:
        yield launched
    finally:
        _counter.active = previous
