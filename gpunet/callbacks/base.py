"""Callback: hooks into ``gpunet.fit``.

Each hook receives the trainer state it needs; ``logs`` is a dict of the current
numbers (``loss``, metrics, ``val_*``). A callback resets its own state in
``on_train_begin``, so one instance can serve several ``fit`` calls.
"""

from __future__ import annotations

from typing import Any


class Callback:
    """Base class; override the hooks you need.

    Attributes set by ``fit`` before ``on_train_begin``: ``model``, ``optimizer``,
    ``trainer`` (the object running the loop; ``trainer.stop_training = True`` ends
    training after the current epoch, or after the current batch when set in
    ``on_batch_end``).
    """

    model: Any = None
    optimizer: Any = None
    trainer: Any = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        """Called once before the first epoch."""

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """Called at the start of each epoch (0-based)."""

    def on_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        """Called after each optimizer step; ``logs["loss"]`` is that batch's loss."""

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """Called at the end of each epoch with the epoch's numbers (validation too)."""

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        """Called once after the last epoch (also after an early stop)."""
