"""Collectives on GPU memory through NCCL (``cupy.cuda.nccl``), the transport for CuPy.

This module is the one place outside ``gpunet/backend.py`` and ``kernels/`` that
imports CuPy (inside its functions, never at import time). The rule that keeps CuPy
out of the rest of gpunet is about array code: layers, ops and optimizers are written
once against the array API. A transport is not array code; it hands raw device
pointers and a CUDA stream to NCCL, which no array API covers, and it has no NumPy
twin to be written against. Putting these calls in ``backend.py`` would make the seam
know about communicators; keeping them here keeps the exception to a few lines.

The NCCL unique id is created on rank 0 and shared over MPI; after that every
gradient byte moves GPU to GPU (NVLink, PCIe or InfiniBand, as NCCL chooses), never
through the host. Collectives are queued on CuPy's current stream, so they are
ordered after the backward kernels that produced the gradients and before the
optimizer kernels that read them, with no host synchronisation.
"""

from __future__ import annotations

from typing import Any


def select_device(local_rank: int) -> int:
    """Use GPU ``local_rank % count`` in this process (one GPU per rank on a host).

    Goes through ``backend.set_device`` so that the choice outlives a later
    ``backend.set("cupy")`` and takes precedence over ``GPUNET_DEVICE``.
    """
    from gpunet import backend

    index = local_rank % backend.device_count()
    backend.set_device(index)
    return index


class NcclTransport:
    """Allreduce and broadcast of CuPy buffers over an NCCL communicator.

    Args:
        comm: the mpi4py communicator; used once, to share the NCCL unique id.
    """

    name = "nccl"

    def __init__(self, comm: Any):
        try:
            from cupy.cuda import nccl
        except ImportError as err:
            raise RuntimeError(
                f"gpunet.distributed: the cupy backend needs NCCL, which this CuPy cannot "
                f"load ({err}); install it with pip install nvidia-nccl-cu12 (or -cu13)"
            ) from err
        self._nccl = nccl
        unique_id = nccl.get_unique_id() if comm.Get_rank() == 0 else None
        unique_id = comm.bcast(unique_id, root=0)
        self.communicator = nccl.NcclCommunicator(comm.Get_size(), unique_id, comm.Get_rank())

    def _dtype(self, flat: Any) -> int:
        codes = {
            "float16": self._nccl.NCCL_FLOAT16,
            "float32": self._nccl.NCCL_FLOAT32,
            "float64": self._nccl.NCCL_FLOAT64,
            "int32": self._nccl.NCCL_INT32,
            "int64": self._nccl.NCCL_INT64,
        }
        try:
            return codes[flat.dtype.name]
        except KeyError:
            raise TypeError(f"gpunet.distributed: NCCL cannot reduce {flat.dtype}") from None

    def allreduce_sum(self, flat: Any) -> ReadyAllreduce:
        """Queue the in-place sum of ``flat`` over the ranks on the current stream."""
        import cupy

        stream = cupy.cuda.get_current_stream().ptr
        self.communicator.allReduce(
            flat.data.ptr, flat.data.ptr, flat.size, self._dtype(flat), self._nccl.NCCL_SUM, stream
        )
        return ReadyAllreduce(flat)

    def broadcast(self, flat: Any, root: int = 0) -> Any:
        """Rank ``root``'s ``flat`` on every rank, in place, on the current stream."""
        import cupy

        stream = cupy.cuda.get_current_stream().ptr
        self.communicator.bcast(flat.data.ptr, flat.size, self._dtype(flat), root, stream)
        return flat


class ReadyAllreduce:
    """An allreduce queued on the stream: later kernels on that stream see the sum."""

    def __init__(self, flat: Any):
        self._flat = flat

    def wait(self) -> Any:
        return self._flat
