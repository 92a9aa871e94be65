"""History: the per-epoch numbers of one ``fit`` call."""

from __future__ import annotations

from typing import Any

from gpunet.callbacks.base import Callback


class History(Callback):
    """The numbers of every epoch, recorded by ``fit`` and returned by it.

    Attributes:
        history: ``{name: [value per epoch]}`` for ``loss``, each metric, the ``val_*``
            numbers and anything callbacks log (``lr``).
        epoch: the epoch indices (0-based; they start at ``initial_epoch``).
        epoch_time: seconds each epoch took (training and validation), set by ``fit``.

    ``history["loss"]`` is a shortcut for ``history.history["loss"]``.
    """

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.epoch_time: list[float] = []

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.__init__()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        self.epoch.append(epoch)
        for key, value in logs.items():
            # A key that appears late (a callback added mid-run) is padded with NaN.
            column = self.history.setdefault(key, [float("nan")] * (len(self.epoch) - 1))
            column.append(float(value))
        for key, column in self.history.items():
            if key not in logs:
                column.append(float("nan"))

    def __getitem__(self, key: str) -> list[float]:
        try:
            return self.history[key]
        except KeyError:
            raise KeyError(
                f"History has no {key!r}; recorded: {', '.join(self.history) or 'nothing'}"
            ) from None

    def __contains__(self, key: str) -> bool:
        return key in self.history

    def __len__(self) -> int:
        return len(self.epoch)

    def keys(self) -> list[str]:
        """The recorded names, in the order they first appeared."""
        return list(self.history)

    def table(self) -> str:
        """The history as a text table, one row per epoch (1-based epoch numbers)."""
        names = self.keys()
        widths = [max(len(name), 8) for name in names]
        header = "epoch  " + "  ".join(
            f"{name:>{w}}" for name, w in zip(names, widths, strict=True)
        )
        if self.epoch_time:
            header += "    time"
        rows = [header]
        for row, epoch in enumerate(self.epoch):
            cells = [
                f"{self.history[name][row]:>{w}.4f}" for name, w in zip(names, widths, strict=True)
            ]
            line = f"{epoch + 1:>5}  " + "  ".join(cells)
            if row < len(self.epoch_time):
                line += f"  {self.epoch_time[row]:>5.2f}s"
            rows.append(line)
        return "\n".join(rows)

    def __repr__(self) -> str:
        return f"History(epochs={len(self)}, keys={self.keys()})"
