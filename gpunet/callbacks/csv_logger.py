"""CSVLogger: one CSV row per epoch."""

from __future__ import annotations

import csv
import os
from typing import Any

from gpunet import checks, io
from gpunet.callbacks.base import Callback
from gpunet.callbacks.monitor import is_main_process


class CSVLogger(Callback):
    """Append each epoch's numbers to a CSV file (``epoch`` first, 0-based).

    The file is created (or, with ``append``, opened) when training begins, so a bad path
    fails at once; each row is flushed to disk when its epoch ends, so a crash loses
    nothing that was logged. In a distributed run only the main rank writes.

    Args:
        path: the CSV file.
        separator: the column separator (default ``","``).
        append: add to an existing file instead of replacing it (default False); the
            header is written only if the file is empty.
    """

    def __init__(self, path: str | os.PathLike, separator: str = ",", append: bool = False):
        if not (isinstance(separator, str) and len(separator) == 1):
            raise ValueError(f"CSVLogger: separator must be one character, got {separator!r}")
        checks.flag(append, "CSVLogger", "append")
        self.path, self.separator, self.append = os.fspath(path), separator, append
        self._columns: list[str] | None = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._columns = None
        if not is_main_process():
            return
        io.check_directory(self.path, "CSVLogger")
        if self.append and os.path.exists(self.path) and os.path.getsize(self.path) > 0:
            with open(self.path, newline="") as file:
                header = next(csv.reader(file, delimiter=self.separator), None)
            self._columns = header
        else:
            with open(self.path, "w", newline=""):
                pass

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if not is_main_process():
            return
        row = {"epoch": epoch, **(logs or {})}
        write_header = self._columns is None
        if write_header:
            self._columns = list(row)
        with open(self.path, "a", newline="") as file:
            writer = csv.DictWriter(
                file, fieldnames=self._columns, delimiter=self.separator, extrasaction="ignore"
            )
            if write_header:
                writer.writeheader()
            writer.writerow({key: _cell(row.get(key)) for key in self._columns})


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return value
