"""Joining the MPI job: ``init()``, ``rank()``, ``world_size()``, ``is_main()``."""

from __future__ import annotations

import sys
from typing import Any

from gpunet import backend
from gpunet.distributed import state, watchdog
from gpunet.distributed.transport import MpiTransport


def init() -> state.ProcessGroup:
    """Join the job started by ``mpirun`` (or become a job of one without it).

    Reads the ranks from the MPI environment (``MPI.COMM_WORLD``). On the cupy backend
    it also picks this rank's GPU (the rank's index on its host, modulo the visible
    GPUs, which overrides ``GPUNET_DEVICE``) and opens an NCCL communicator, so call
    it before building the model. On the other backends gradients travel over MPI.

    When there is more than one rank, a rank that ends early ends the whole job within
    seconds, naming the rank, so the other ranks do not wait forever in their next
    collective: an exception that reaches the top of a rank prints its traceback and
    aborts the job; for ``sys.exit``, ``os._exit`` and signals see
    ``gpunet.distributed.watchdog``.

    Calling it again returns the same group.

    Returns:
        The process group (``rank``, ``size``, ``local_rank``, ``transport``).

    Raises:
        RuntimeError: if mpi4py (or an MPI library) is missing; the message says what
            to install.
    """
    if state.is_initialized():
        return state.current("init")
    try:
        from mpi4py import MPI
    except ImportError as err:
        raise RuntimeError(
            f"gpunet.distributed.init: needs mpi4py and an MPI library ({err}); "
            f"pip install 'gpunet[distributed]' installs mpi4py and Open MPI"
        ) from None
    comm = MPI.COMM_WORLD
    host_comm = comm.Split_type(MPI.COMM_TYPE_SHARED)
    local_rank = host_comm.Get_rank()
    host_comm.Free()
    if backend.name() == "cupy":
        from gpunet.distributed import nccl

        nccl.select_device(local_rank)
        transport: Any = nccl.NcclTransport(comm)
    else:
        transport = MpiTransport(comm)
    group = state.ProcessGroup(comm, comm.Get_rank(), comm.Get_size(), local_rank, transport)
    state.install(group)
    if group.size > 1:
        sys.excepthook = _aborting_hook(comm, group.rank, sys.excepthook)
        watchdog.install(comm)
    return group


def rank() -> int:
    """This process's rank, 0..world_size()-1."""
    return state.current("rank").rank


def world_size() -> int:
    """The number of processes in the job."""
    return state.current("world_size").size


def is_main() -> bool:
    """Whether this is rank 0, the one that prints progress and writes files."""
    return state.current("is_main").rank == 0


def _aborting_hook(comm: Any, rank_: int, previous: Any) -> Any:
    def abort_job(kind: type[BaseException], value: BaseException, traceback: Any) -> None:
        sys.stderr.write(
            f"gpunet.distributed: rank {rank_} raised {kind.__name__}; aborting the MPI job "
            f"so the other ranks do not wait forever\n"
        )
        previous(kind, value, traceback)
        sys.stderr.flush()
        sys.stdout.flush()
        comm.Abort(1)

    return abort_job
