"""Waiting for the other ranks without waiting forever.

A rank that ends early would leave the others waiting in their next collective forever.
gpunet ends the whole job instead, within seconds, with a message naming the rank:

* an exception that reaches the top of a rank: the hook ``init()`` installs prints it
  and aborts the job (``MPI_Abort``);
* ``os._exit`` or a signal: ``mpirun`` sees the process end without ``MPI_Finalize``
  and ends the job, naming the rank;
* ``sys.exit`` or the end of the script: MPI's finalisation waits for every rank, so
  before it the rank's exit handler sends each other rank a notice saying how many of
  gpunet's collectives it took part in. Every wait in gpunet's collectives (the gradient
  allreduce, the broadcasts, the gathers of layouts, metrics and data shapes) polls for
  notices, and a rank waiting in a collective that the leaver never joined aborts the
  job, naming it. At the normal end of a job every rank sends and receives all notices
  and nothing is aborted.

The user's own mpi4py calls are not watched: a rank blocked in one of them still waits.
"""

from __future__ import annotations

import atexit
import pickle
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

_NOTICE_TAG = 31_415  # the notices travel on a communicator of their own
_LONGEST_PAUSE_S = 1e-3  # between two polls of a wait that is not done


@dataclass
class _Watch:
    """The notices of one job: their communicator and what this rank knows."""

    notices: Any  # a duplicate of the world communicator
    rank: int
    size: int
    started: int = 0  # collectives this rank has started
    left: dict[int, int] = field(default_factory=dict)  # rank -> collectives it started


_watch: _Watch | None = None


def install(comm: Any) -> None:
    """Watch the ranks of ``comm`` (called by ``init()`` on every rank of a job of > 1)."""
    global _watch
    if _watch is not None:
        return
    _watch = _Watch(comm.Dup(), comm.Get_rank(), comm.Get_size())
    atexit.register(_say_goodbye)


def start() -> int:
    """Count a collective this rank starts; returns its number (0, 1, ... in order)."""
    if _watch is None:
        return 0
    number = _watch.started
    _watch.started += 1
    return number


def wait(request: Any, number: int, what: str) -> None:
    """Wait for ``request``, collective ``number``; end the job if a rank that never
    joined it has left.

    Args:
        request: an mpi4py request of a nonblocking collective.
        number: what ``start()`` returned when the collective was started.
        what: the collective, for the message ("the gradient allreduce").
    """
    if request.Test():
        return
    watch = _watch
    if watch is None:
        request.Wait()
        return
    pause = 0.0
    while not request.Test():
        _receive_notices(watch)
        for rank, started in watch.left.items():
            if started <= number:
                _abort(watch, rank, what)
        time.sleep(pause)
        pause = min(2 * pause + 1e-5, _LONGEST_PAUSE_S)


def allgather(comm: Any, value: Any, what: str) -> list[Any]:
    """Every rank's ``value`` (any picklable data), in rank order, as a watched wait
    (without a watch, in a job of one, mpi4py's own ``allgather``)."""
    if _watch is None:
        return comm.allgather(value)
    payload = np.frombuffer(pickle.dumps(value), dtype=np.uint8)
    sizes = np.empty(comm.Get_size(), dtype=np.int64)
    number = start()
    wait(comm.Iallgather(np.array([payload.size], dtype=np.int64), sizes), number, what)
    gathered = np.empty(int(sizes.sum()), dtype=np.uint8)
    number = start()
    wait(comm.Iallgatherv(payload, [gathered, sizes]), number, what)
    ends = np.cumsum(sizes)
    return [
        pickle.loads(gathered[end - size : end].tobytes())
        for size, end in zip(sizes, ends, strict=True)
    ]


def bcast(comm: Any, value: Any, root: int, what: str) -> Any:
    """Rank ``root``'s ``value`` (any picklable data) on every rank, as a watched wait
    (without a watch, in a job of one, mpi4py's own ``bcast``)."""
    if _watch is None:
        return comm.bcast(value, root=root)
    is_root = comm.Get_rank() == root
    payload = np.frombuffer(pickle.dumps(value), dtype=np.uint8) if is_root else None
    size = np.array([payload.size if is_root else 0], dtype=np.int64)
    number = start()
    wait(comm.Ibcast(size, root=root), number, what)
    buffer = payload.copy() if is_root else np.empty(int(size[0]), dtype=np.uint8)
    number = start()
    wait(comm.Ibcast(buffer, root=root), number, what)
    return value if is_root else pickle.loads(buffer.tobytes())


def _receive_notices(watch: _Watch) -> None:
    from mpi4py import MPI

    status = MPI.Status()
    while watch.notices.Iprobe(source=MPI.ANY_SOURCE, tag=_NOTICE_TAG, status=status):
        count = np.empty(1, dtype=np.int64)
        source = status.Get_source()
        watch.notices.Recv(count, source=source, tag=_NOTICE_TAG)
        watch.left[source] = int(count[0])


def _abort(watch: _Watch, rank: int, what: str) -> None:
    sys.stdout.flush()
    sys.stderr.write(
        f"gpunet.distributed: rank {rank} ended (sys.exit or the end of its script) while "
        f"rank {watch.rank} waits for it in {what}; aborting the MPI job so no rank waits "
        "forever\n"
    )
    sys.stderr.flush()
    watch.notices.Abort(1)


def _say_goodbye() -> None:
    """At exit: tell every rank how many collectives this one joined, hear theirs."""
    from mpi4py import MPI

    watch = _watch
    if watch is None or MPI.Is_finalized():
        return
    count = np.array([watch.started], dtype=np.int64)
    others = [rank for rank in range(watch.size) if rank != watch.rank]
    sends = [watch.notices.Isend(count, dest=rank, tag=_NOTICE_TAG) for rank in others]
    pause = 0.0
    while len(watch.left) < len(others):
        _receive_notices(watch)
        time.sleep(pause)
        pause = min(2 * pause + 1e-5, _LONGEST_PAUSE_S)
    MPI.Request.Waitall(sends)
