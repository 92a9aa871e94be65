"""Progress display of ``fit``: a tqdm bar per epoch, one line per epoch, or nothing."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

# Reading the running loss waits for the GPU, so the bar asks for it at most this often.
REFRESH_SECONDS = 0.1


def format_logs(logs: dict[str, float]) -> str:
    """``"loss: 0.1234 - accuracy: 0.9650"``."""
    return " - ".join(f"{key}: {value:.4f}" for key, value in logs.items())


class Progress:
    """Shows training progress.

    Args:
        verbose: 0 silent, 1 a tqdm bar per epoch with the running loss and metrics
            (updated at most every ``REFRESH_SECONDS``), 2 one line per epoch.
        epochs: the last epoch number shown (``"Epoch 3/10"``).
        steps: batches per epoch.
    """

    def __init__(self, verbose: int, epochs: int, steps: int):
        self.verbose, self.epochs, self.steps = verbose, epochs, steps
        self._bar: Any = None
        self._running: Callable[[], dict[str, float]] | None = None
        self._last = 0.0
        self._done = 0

    def epoch_begin(self, epoch: int, running: Callable[[], dict[str, float]]) -> None:
        """Start an epoch; ``running()`` returns the epoch's running numbers when asked."""
        if self.verbose != 1:
            return
        from tqdm.auto import tqdm

        self._running = running
        self._last = time.perf_counter()
        self._done = 0
        self._bar = tqdm(
            total=self.steps,
            desc=f"Epoch {epoch + 1}/{self.epochs}",
            unit="batch",
            leave=True,
            dynamic_ncols=True,
            mininterval=REFRESH_SECONDS,
            file=sys.stderr,
        )

    def batch_end(self, batch: int) -> None:
        """Called after every batch; redraws the bar only when it is due."""
        if self._bar is None:
            return
        self._done = batch + 1
        now = time.perf_counter()
        if now - self._last < REFRESH_SECONDS:
            return
        self._last = now
        self._bar.set_postfix_str(format_logs(self._running()), refresh=False)
        self._bar.update(batch + 1 - self._bar.n)

    def epoch_end(self, epoch: int, logs: dict[str, float], seconds: float) -> None:
        """Show the epoch's final numbers (validation included)."""
        if self.verbose == 2:
            print(
                f"Epoch {epoch + 1}/{self.epochs} - {seconds:.2f}s - {format_logs(logs)}",
                flush=True,
            )
        if self._bar is not None:
            self._bar.set_postfix_str(format_logs(logs), refresh=False)
            self._bar.update(self._done - self._bar.n)  # fewer than steps after a stop
            self.close()

    def close(self) -> None:
        """Close an open bar (also after an error or an early stop mid-epoch)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
