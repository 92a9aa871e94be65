"""The process group: set by ``init()``, read by everything that must know the ranks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class ProcessGroup:
    """The ranks of one data-parallel job.

    Attributes:
        comm: the mpi4py communicator (``MPI.COMM_WORLD``); control messages, the NCCL
            id, the sampler's order and the averaged metrics travel over it.
        rank: this process's index, 0..size-1.
        size: the number of processes.
        local_rank: the index among the processes on this host (picks the GPU).
        transport: moves the flat gradient buffers: ``MpiTransport`` for host arrays,
            ``NcclTransport`` for CuPy arrays.
    """

    comm: Any
    rank: int
    size: int
    local_rank: int
    transport: Any


_communicator: ProcessGroup | None = None


def is_initialized() -> bool:
    """Whether ``gpunet.distributed.init()`` has run in this process."""
    return _communicator is not None


def current(caller: str) -> ProcessGroup:
    """The process group, or a RuntimeError naming ``caller`` when ``init()`` has not run."""
    if _communicator is None:
        raise RuntimeError(
            f"gpunet.distributed.{caller}: the process group is not initialized; call "
            f"gpunet.distributed.init() first (and launch with mpirun -n N python script.py)"
        )
    return _communicator


def install(group: ProcessGroup | None) -> None:
    """Make ``group`` the process group of this process (None forgets it)."""
    global _communicator
    _communicator = group
