"""Monitor: the watched number of EarlyStopping and ModelCheckpoint, and when it improves."""

from __future__ import annotations

import math
from typing import Any

from gpunet import checks, distributed


class Monitor:
    """Tracks the best value of one logged number.

    Args:
        owner: the callback's name, for messages.
        monitor: the log name to watch (``"val_loss"``, ``"val_accuracy"``, ...).
        mode: ``"min"``, ``"max"`` or ``"auto"`` (max for names containing ``acc``, else
            min).
        min_delta: the least change that counts as an improvement (>= 0).
    """

    def __init__(self, owner: str, monitor: str, mode: str = "auto", min_delta: float = 0.0):
        if not isinstance(monitor, str):
            raise TypeError(
                f"{owner}: monitor must be a log name such as 'val_loss', got {monitor!r}"
            )
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"{owner}: mode must be 'auto', 'min' or 'max', got {mode!r}")
        min_delta = checks.number(min_delta, owner, "min_delta", 0)
        if mode == "auto":
            mode = "max" if "acc" in monitor else "min"
        self.owner, self.monitor, self.mode, self.min_delta = owner, monitor, mode, min_delta
        self.best = math.inf if mode == "min" else -math.inf

    def reset(self, trainer: Any = None) -> None:
        """Forget the best value; check the monitored name against what ``fit`` will log."""
        self.best = math.inf if self.mode == "min" else -math.inf
        names = getattr(trainer, "log_names", None)
        if names:
            self._require(names)

    def value(self, logs: dict[str, Any] | None) -> float:
        """The monitored number from an epoch's logs.

        Raises:
            ValueError: naming the available numbers if it is missing.
        """
        logs = logs or {}
        self._require(logs)
        return float(logs[self.monitor])

    def improved(self, value: float) -> bool:
        """Whether ``value`` beats the best by more than ``min_delta`` (NaN never does)."""
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def _require(self, names: Any) -> None:
        if self.monitor not in names:
            hint = (
                " (pass validation_data or validation_split to fit)"
                if (self.monitor.startswith("val_"))
                else ""
            )
            raise ValueError(
                f"{self.owner}: monitored value {self.monitor!r} is not logged{hint}; "
                f"available: {', '.join(names) or 'none'}"
            )


def is_main_process() -> bool:
    """True unless this is a non-main rank of a distributed run (which must not write files)."""
    return not distributed.is_initialized() or distributed.is_main()
