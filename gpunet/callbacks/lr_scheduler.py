"""LearningRateScheduler: set the optimizer's learning rate at the start of each epoch."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

from gpunet.callbacks.base import Callback


class LearningRateScheduler(Callback):
    """Sets ``optimizer.lr = fn(epoch)`` or ``fn(epoch, lr)`` before each epoch.

    Args:
        fn: the schedule; ``epoch`` is 0-based and ``lr`` the current rate, e.g.
            ``lambda epoch: 0.1 * 0.5 ** (epoch // 10)`` or
            ``lambda epoch, lr: lr * 0.95``.
        verbose: print the new rate each epoch (default 0).

    The rate of each epoch is logged as ``lr`` (in the History and the CSV log).

    Raises:
        ValueError: if ``fn`` returns a negative or non-finite rate.
    """

    def __init__(self, fn: Callable[..., float], verbose: int = 0):
        if not callable(fn):
            raise TypeError(f"LearningRateScheduler: fn must be callable, got {fn!r}")
        self.fn, self.verbose = fn, verbose
        self._takes_lr = _positional_count(fn) >= 2

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        lr = self.fn(epoch, self.optimizer.lr) if self._takes_lr else self.fn(epoch)
        try:
            lr = float(lr)
        except (TypeError, ValueError):
            raise ValueError(
                f"LearningRateScheduler: fn({epoch}) must return a number, got {lr!r}"
            ) from None
        if not (math.isfinite(lr) and lr >= 0):
            raise ValueError(
                f"LearningRateScheduler: fn({epoch}) returned {lr}; a rate must be finite and >= 0"
            )
        self.optimizer.lr = lr
        if logs is not None:
            logs["lr"] = lr  # fit adds what is logged here to the epoch's logs
        if self.verbose:
            print(f"LearningRateScheduler: epoch {epoch + 1}: lr = {lr:g}")


def _positional_count(fn: Callable[..., Any]) -> int:
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature: assume fn(epoch)
        return 1
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters):
        return 2
    return sum(p.kind in kinds for p in parameters)
