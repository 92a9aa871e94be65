"""The process group: set by ``init()``, read by everything that must know the ranks."""

from __future__ import annotations

from typing import Any

_communicator: Any = None


def is_initialized() -> bool:
    """Whether ``gpunet.distributed.init()`` has run in this process."""
    return _communicator is not None
