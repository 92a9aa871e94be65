"""What every CUDA wrapper needs, written once.

``current_stream()`` is CuPy's current stream as a Numba stream, so kernels queue behind
the CuPy work that produced their inputs. ``device_arrays`` views CuPy arrays as Numba
device arrays WITHOUT the stream synchronisation that Numba performs by default when it
consumes a ``__cuda_array_interface__`` (safe here: producer and consumer share the stream).
Both import CuPy and numba.cuda on first call, never at import.
"""

from __future__ import annotations

from typing import Any

_streams: dict[int, Any] = {}


def current_stream() -> Any:
    """CuPy's current stream, wrapped once per pointer as a Numba external stream."""
    import cupy
    from numba import cuda

    pointer = cupy.cuda.get_current_stream().ptr
    stream = _streams.get(pointer)
    if stream is None:
        stream = _streams[pointer] = cuda.external_stream(pointer)
    return stream


def device_arrays(*arrays: Any) -> tuple[Any, ...]:
    """Kernel arguments with every CuPy array viewed as a Numba device array, unsynchronised.

    Scalars, tuples and NumPy arrays (the CUDA simulator's inputs) pass unchanged.
    """
    from numba import cuda

    return tuple(
        cuda.as_cuda_array(arg, sync=False) if type(arg).__module__.startswith("cupy") else arg
        for arg in arrays
    )
