"""``average(logs)``: one number per metric for the whole job."""

from __future__ import annotations

from typing import Any

from gpunet.distributed import state, watchdog


def average(logs: dict[str, Any]) -> dict[str, float]:
    """The mean over the ranks of each number in ``logs``.

    Every rank must call it with the same keys; every rank gets the same result. The
    ranks' shards have equal sizes (see ``shard``), so the mean of the ranks' means is
    the mean over all their samples.

    Args:
        logs: metric name -> a float, or a 0-d array of any backend.

    Returns:
        A new dict with the same keys and the averaged floats.

    Raises:
        RuntimeError: if ``init()`` has not run.
        TypeError: for a value that is not a number.
        ValueError: if the ranks passed different keys.
    """
    group = state.current("average")
    values = {}
    for key, value in logs.items():
        try:
            values[key] = float(value)
        except (TypeError, ValueError):
            raise TypeError(
                f"gpunet.distributed.average: {key!r} is {type(value).__name__}, not a number"
            ) from None
    if group.size == 1:
        return values
    gathered = watchdog.allgather(group.comm, values, "the averaging of the logs")
    keys = list(values)
    for rank, other in enumerate(gathered):
        if sorted(other) != sorted(keys):
            raise ValueError(
                f"gpunet.distributed.average: rank {rank} logged {sorted(other)} but rank "
                f"{group.rank} logged {sorted(keys)}; every rank must log the same metrics"
            )
    return {key: sum(other[key] for other in gathered) / group.size for key in keys}
