"""Running the example scripts from the tests, and reading numbers from what they print."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str, *args: str, cwd: Path, timeout: float = 600) -> str:
    """Run ``examples/<name>`` in a subprocess on the backend under test; returns stdout.

    BLAS and Numba each get one thread: the example models are small, and on two shared
    cores their two thread pools only wait for each other.
    """
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout


def number(pattern: str, text: str) -> float:
    """The first group of the first match of ``pattern`` in ``text``, as a float."""
    match = re.search(pattern, text)
    assert match, f"no line matching {pattern!r} in:\n{text}"
    return float(match.group(1))
