"""Start every rank from the same model: the layout check and ``broadcast_parameters``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gpunet.distributed import state, watchdog
from gpunet.distributed.buckets import DEFAULT_BUCKET_BYTES, pack, plan_buckets, unpack

Layout = list[tuple[str, tuple[int, ...], str]]


def dtype_name(array: Any) -> str:
    """``"float32"`` for an array of any backend."""
    return str(array.dtype).rsplit(".", 1)[-1]


def layout_of(named_arrays: dict[str, Any]) -> Layout:
    """``(name, shape, dtype name)`` of each array, in order."""
    return [(name, tuple(a.shape), dtype_name(a)) for name, a in named_arrays.items()]


def layout_mismatches(layouts: Sequence[Layout]) -> list[str]:
    """How each rank's layout differs from rank 0's (empty when all agree)."""
    reference = {name: (shape, dtype) for name, shape, dtype in layouts[0]}
    problems = []
    for rank, layout in enumerate(layouts[1:], start=1):
        own = {name: (shape, dtype) for name, shape, dtype in layout}
        problems += [
            f"{n!r} exists on rank 0 but not on rank {rank}" for n in reference.keys() - own
        ]
        problems += [
            f"{n!r} exists on rank {rank} but not on rank 0" for n in own.keys() - reference
        ]
        for name in reference.keys() & own.keys():
            if reference[name] != own[name]:
                (shape_0, dtype_0), (shape_r, dtype_r) = reference[name], own[name]
                problems.append(
                    f"{name!r} is {shape_0} {dtype_0} on rank 0 but {shape_r} {dtype_r} "
                    f"on rank {rank}"
                )
        if not problems and [n for n, _, _ in layout] != [n for n, _, _ in layouts[0]]:
            problems.append(f"the parameters are in another order on rank {rank} than on rank 0")
    return sorted(problems)


def check_same_layout(group: state.ProcessGroup, caller: str, layout: Layout) -> None:
    """Raise the same ValueError on every rank when the ranks' layouts differ.

    Every rank gathers every layout, so all of them see the mismatch and raise
    together instead of some waiting forever in a collective.
    """
    layouts = watchdog.allgather(group.comm, layout, f"the layout check of {caller}")
    problems = layout_mismatches(layouts)
    if problems:
        raise ValueError(
            f"gpunet.distributed.{caller}: the model differs across ranks: " + "; ".join(problems)
        )


def check_same_on_every_rank(caller: str, what: str, value: Any) -> None:
    """Raise the same ValueError on every rank when the ranks' ``value`` differ.

    Args:
        caller: the function checking, for the message (``"fit"``).
        what: what ``value`` describes, for the message (``"data"``).
        value: picklable data to compare (``{"x": (640, 12), "y": (640,)}``).

    Raises:
        RuntimeError: if ``init()`` has not run.
        ValueError: listing each rank's value, on every rank, before anything else.
    """
    group = state.current(caller)
    if group.size == 1:
        return
    values = watchdog.allgather(group.comm, value, f"the {what} check of {caller}")
    if any(other != values[0] for other in values[1:]):
        listed = "; ".join(f"rank {rank}: {other}" for rank, other in enumerate(values))
        raise ValueError(
            f"{caller}: the ranks hold different {what} ({listed}); every rank must hold "
            f"the same {what}"
        )


def broadcast_parameters(
    model: Any, root: int = 0, bucket_bytes: int = DEFAULT_BUCKET_BYTES
) -> None:
    """Copy rank ``root``'s parameters and buffers into the model on every rank.

    Call it once after building the model and before training, so that all ranks
    start from the same weights whatever their seeds.

    Args:
        model: a ``Layer`` (its ``state_dict()`` is broadcast).
        root: the rank whose values win (default 0).
        bucket_bytes: the most bytes per broadcast call (default 25 MiB).

    Raises:
        RuntimeError: if ``init()`` has not run.
        ValueError: on every rank, naming each parameter whose name, shape or dtype
            differs between ranks.
    """
    group = state.current("broadcast_parameters")
    if not 0 <= root < group.size:
        raise ValueError(
            f"gpunet.distributed.broadcast_parameters: root must be a rank in 0..{group.size - 1}, "
            f"got {root}"
        )
    entries = model.state_dict()
    layout = layout_of(entries)
    check_same_layout(group, "broadcast_parameters", layout)
    if group.size == 1:
        return
    arrays = list(entries.values())
    received: dict[str, Any] = {}
    for bucket in plan_buckets([(shape, dtype) for _, shape, dtype in layout], bucket_bytes):
        flat = group.transport.broadcast(pack([arrays[i] for i in bucket.indices]), root)
        for index, array in zip(bucket.indices, unpack(flat, bucket.shapes), strict=True):
            received[layout[index][0]] = array
    model.load_state_dict(received)
