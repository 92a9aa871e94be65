"""What every CUDA kernel family needs, written once: Numba's CUDA module, the stream, the
launch, the index arithmetic.

* ``numba_cuda()`` imports ``numba.cuda`` on first use (never at import: it is slow to
  import and may not import at all where numba-cuda does not match NumPy), and says
  clearly why when it cannot.
* ``current_stream()`` is CuPy's current stream as a Numba stream, so kernels queue
  behind the CuPy work that produced their inputs.
* ``launch(kernel, size, *args)`` runs a kernel with one thread per element over
  ``size`` elements: the launch configuration, CuPy arrays viewed as Numba device arrays
  WITHOUT the stream synchronisation Numba performs by default when it consumes a
  ``__cuda_array_interface__`` (safe: producer and consumer share the stream), no
  low-occupancy warning for small launches, and a record of launches for the tests
  (``counting_launches``, ``recording_launches``).
* ``array_library(*arrays)`` is CuPy for CuPy arrays and NumPy for NumPy arrays, so the
  ``*_cuda`` wrappers of every family also run on NumPy arrays under the simulator.
* ``cuda_families()`` finds every family module with CUDA kernels. Each has
  ``cuda_kernels()`` (name -> kernel, compiled on first use) and ``cuda_signatures(dtype)``
  (name -> the exact argument types its wrappers launch it with for that float dtype),
  which tests/test_cuda_compile.py compiles to PTX and the simulator tests check launches
  against.
* Index arithmetic: Numba types integer arithmetic at 64 bits whatever the width of its
  operands, and a 64-bit division is a long emulated sequence on a GPU. The kernels that
  split a flat index into coordinates therefore divide through ``index_math(wide)``:
  32-bit unsigned division (``div.u32``) in the build used for arrays below
  ``INDEX32_LIMIT`` elements, 64-bit division in the ``WIDE`` build used above it.
  ``index_builds`` makes both builds of a family's kernels and ``launch_indexed`` picks
  one by the sizes of the arrays it is given.

Under Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) the same calls take NumPy
arrays, which is how the tests run every CUDA kernel without a GPU.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import math
import pkgutil
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numba
import numpy
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

THREADS_PER_BLOCK = 256

# Arrays (and grids) below this many elements get the build with 32-bit index division.
INDEX32_LIMIT = 2**31 - THREADS_PER_BLOCK
# Name suffix of a kernel's build with 64-bit index division, in ``cuda_kernels()``.
WIDE = "_int64"

_streams: dict[int, Any] = {}
_record = threading.local()


def numba_cuda() -> Any:
    """``numba.cuda``, imported now.

    Raises:
        ImportError: saying why it does not import (numba-cuda missing, or built for
            another NumPy) and what to do.
    """
    try:
        from numba import cuda
    except Exception as err:  # ImportError, or AttributeError from a NumPy mismatch
        raise ImportError(
            f"the CUDA kernels need numba.cuda, which does not import here ({err!r}); "
            f"install numba-cuda built for this NumPy ({numpy.__version__}), or set "
            "GPUNET_KERNELS=0 to run on CuPy's own operations"
        ) from err
    return cuda


def cuda_families() -> dict[str, Any]:
    """Every kernel family module of this package that has CUDA kernels (a
    ``cuda_kernels()``), by module name; imports them, compiles nothing."""
    package = importlib.import_module(__package__)
    found = {}
    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("_"):
            module = importlib.import_module(f"{__package__}.{info.name}")
            if hasattr(module, "cuda_kernels"):
                found[info.name] = module
    return found


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


def array_library(*arrays: Any) -> Any:
    """CuPy when an argument is a CuPy array, else NumPy (the simulator's arrays)."""
    if any(_is_cupy(arg) for arg in arrays):
        import cupy

        return cupy
    return numpy


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
    names = getattr(_record, "names", None)
    if names is not None:
        names.append(getattr(kernel, "__name__", repr(kernel)))
    calls = getattr(_record, "calls", None)
    if calls is not None:
        calls.append((kernel, args))


def launch_indexed(kernels: dict[str, Any], name: str, size: int, *args: Any) -> None:
    """``launch`` of ``kernels[name]``, or of its ``WIDE`` build when the grid or an array
    argument reaches ``INDEX32_LIMIT`` elements (see ``index_builds``)."""
    largest = max([size, *(getattr(arg, "size", 0) for arg in args)])
    launch(kernels[name + WIDE] if largest >= INDEX32_LIMIT else kernels[name], size, *args)


@contextlib.contextmanager
def counting_launches() -> Iterator[list[str]]:
    """Inside the block, the names of the kernels this thread launches, in order."""
    previous = getattr(_record, "names", None)
    _record.names = launched = []
    try:
        yield launched
    finally:
        _record.names = previous


@contextlib.contextmanager
def recording_launches() -> Iterator[list[tuple[Any, tuple[Any, ...]]]]:
    """Inside the block, ``(kernel, arguments)`` of each launch on this thread, in order
    (the arguments as given to ``launch``: for checking the declared signatures)."""
    previous = getattr(_record, "calls", None)
    _record.calls = launched = []
    try:
        yield launched
    finally:
        _record.calls = previous


# --------------------------------------------------------------------------- index math


@intrinsic
def _divmod_uint32(typingctx: Any, a: Any, b: Any) -> Any:
    """``(a // b, a % b)`` as one 32-bit unsigned division, widened to int64."""
    if not (isinstance(a, types.Integer) and isinstance(b, types.Integer)):
        return None
    signature = types.UniTuple(types.int64, 2)(a, b)

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        dividend = context.cast(builder, args[0], a, types.uint32)
        divisor = context.cast(builder, args[1], b, types.uint32)
        wide = ir.IntType(64)
        quotient = builder.zext(builder.udiv(dividend, divisor), wide)
        remainder = builder.zext(builder.urem(dividend, divisor), wide)
        return context.make_tuple(builder, sig.return_type, (quotient, remainder))

    return signature, codegen


@numba.njit(inline="always")
def divmod32(a, b):
    """``(a // b, a % b)`` by 32-bit unsigned division: for ``0 <= a, b < 2**32``."""
    return _divmod_uint32(a, b)


@numba.njit(inline="always")
def divmod64(a, b):
    """``(a // b, a % b)`` by 64-bit division."""
    return a // b, a % b


@functools.cache
def index_math(wide: bool) -> tuple[Callable, Callable, Callable]:
    """``(divide, unravel_nchw, output_coord)`` for the CUDA kernels' index arithmetic.

    ``divide(a, b)`` is ``(a // b, a % b)`` for non-negative operands, by 32-bit division
    unless ``wide``; ``unravel_nchw`` and ``output_coord`` are ``_index``'s, dividing
    through it. Called from a kernel, they inline into it.
    """
    divide = divmod64 if wide else divmod32

    @numba.njit(inline="always")
    def unravel_nchw(index, c_count, h_count, w_count):
        rest, w = divide(index, w_count)
        rest, h = divide(rest, h_count)
        n, c = divide(rest, c_count)
        return n, c, h, w

    @numba.njit(inline="always")
    def output_coord(in_index, tap, stride, pad, dilation, out_count):
        shifted = in_index + pad - tap * dilation
        if shifted < 0:
            return -1
        out_index, rest = divide(shifted, stride)
        if rest != 0 or out_index >= out_count:
            return -1
        return out_index

    return divide, unravel_nchw, output_coord


def index_builds(build: Callable[[bool], dict[str, Any]]) -> dict[str, Any]:
    """Both builds of a family's indexed kernels: ``build(wide=False)`` under their names,
    ``build(wide=True)`` under their names + ``WIDE``."""
    kernels = dict(build(False))
    kernels.update({name + WIDE: kernel for name, kernel in build(True).items()})
    return kernels
