"""Moving flat buffers between ranks over MPI: the transport for host arrays.

A transport knows three operations on a 1-D array of the backend in use, called by
every rank in the same order: ``allreduce_sum`` (start it, then ``wait()`` for the
sum over ranks), and ``broadcast`` (rank ``root``'s values to all). Everything above
this module (bucketing, averaging, the sampler) is shared by both transports; the NCCL
one for CuPy arrays lives in ``gpunet.distributed.nccl``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gpunet import backend
from gpunet.distributed import watchdog


class MpiTransport:
    """Collectives on host memory through mpi4py (NumPy and array-api-strict arrays).

    NumPy buffers are reduced in place (``MPI_IN_PLACE``, no copy); array-api-strict
    buffers are copied to NumPy and back, since MPI needs a writable buffer.

    Args:
        comm: an mpi4py communicator.
    """

    name = "mpi"

    def __init__(self, comm: Any):
        self.comm = comm

    def allreduce_sum(self, flat: Any) -> PendingAllreduce:
        """Start summing ``flat`` over the ranks; ``.wait()`` returns the sum."""
        from mpi4py import MPI

        host, converted = _host_buffer(flat)
        number = watchdog.start()
        request = self.comm.Iallreduce(MPI.IN_PLACE, host, op=MPI.SUM)
        return PendingAllreduce(request, number, host, flat if not converted else None)

    def broadcast(self, flat: Any, root: int = 0) -> Any:
        """Rank ``root``'s ``flat`` on every rank (same length and dtype everywhere)."""
        host, converted = _host_buffer(flat)
        number = watchdog.start()
        watchdog.wait(self.comm.Ibcast(host, root=root), number, "a broadcast of parameters")
        return backend.asarray(host, dtype=host.dtype.name) if converted else host


class PendingAllreduce:
    """An allreduce in flight; ``wait()`` blocks until it is done and returns the sum.

    The wait is watched (``watchdog.wait``): a rank that left ends the job.
    """

    def __init__(self, request: Any, number: int, host: np.ndarray, original: Any):
        self._request, self._number = request, number
        self._host, self._original = host, original

    def wait(self) -> Any:
        watchdog.wait(self._request, self._number, "the gradient allreduce")
        if self._original is not None:  # reduced in place in the caller's own array
            return self._original
        return backend.asarray(self._host, dtype=self._host.dtype.name)


def _host_buffer(flat: Any) -> tuple[np.ndarray, bool]:
    """A contiguous NumPy array MPI can write into, and whether it is a copy."""
    if isinstance(flat, np.ndarray) and flat.flags.c_contiguous and flat.flags.writeable:
        return flat, False
    if backend.library_of(flat) == "cupy":
        # Device buffers go through NCCL; copying them through the host here would
        # hide a wrong set-up behind a slow job.
        raise TypeError(
            "gpunet.distributed: the MPI transport got a CuPy array; on the cupy backend "
            "gpunet.distributed.init() sets up the NCCL transport"
        )
    return np.ascontiguousarray(backend.to_numpy(flat)), True
