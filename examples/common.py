"""What every gpunet example shares: its command line, its pictures and its summary line.

Every example takes the same three options:

* ``--quick``: a shorter run (under a minute on two cores) that still shows the point;
* ``--out DIR``: the folder for its pictures (default ``out``), created if missing;
* ``--seed N``: the seed of its first run (examples that average over several seeds
  use ``N, N + 1, ...``).

An unknown option, or an ``--out`` that cannot be written, stops the script before any
work with a message that names the option or the path. Each example prints its numbers
for people and once more as one machine-readable line, ``result: {...}`` (JSON), which
the tests read. An example that compares times warms each variant up first (so that no
variant pays for compiling the kernels another one uses too), times several runs or
epochs, reports the median and says what it timed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

RESULT_PREFIX = "result: "


def command_line(doc: str, quick: str) -> argparse.ArgumentParser:
    """The parser every example starts from: ``--quick``, ``--out`` and ``--seed``.

    Args:
        doc: the example's module docstring; its first line describes the script.
        quick: what ``--quick`` changes, for ``--help``.
    """
    parser = argparse.ArgumentParser(
        description=doc.splitlines()[0],
        epilog="Prints its key numbers, then one line 'result: {...}' (JSON) with them.",
    )
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument(
        "--out", type=Path, default=Path("out"), help="folder for the pictures (default: out)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the first run (default: 0)")
    return parser


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse ``argv`` and make sure ``--out`` is a folder this process can write to."""
    args = parser.parse_args(argv)
    problem = _unwritable(args.out)
    if problem:
        parser.error(f"--out {args.out}: cannot write pictures there ({problem})")
    return args


def _unwritable(folder: Path) -> str | None:
    """Why ``folder`` cannot take new files (creating it if missing), or None."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        return err.strerror or type(err).__name__
    return None


def report(**numbers: Any) -> None:
    """Print the example's key numbers as one ``result: {...}`` JSON line."""
    print(RESULT_PREFIX + json.dumps(numbers, sort_keys=True))


def figure(width: float, height: float) -> Any:
    """A matplotlib ``Figure`` with constrained layout (no pyplot, no global state)."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise SystemExit(
            "the examples draw with matplotlib: pip install 'gpunet[examples]'"
        ) from None
    return Figure(figsize=(width, height), layout="constrained")


def save(fig: Any, out: Path, name: str, dpi: int = 120) -> Path:
    """Write ``fig`` to ``out/name`` and say so."""
    path = out / name
    fig.savefig(path, dpi=dpi)
    print(f"saved {path}")
    return path


def seeds(first: int, count: int) -> list[int]:
    """The seeds of an example that averages ``count`` runs: ``first, first + 1, ...``."""
    return list(range(first, first + count))


def mean(values: Sequence[float]) -> float:
    """The arithmetic mean, as a plain float."""
    return float(statistics.fmean(values))
