"""Running the example scripts from the tests, and reading the numbers they report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
RESULT_PREFIX = "result: "  # as examples/common.py prints it


def run_example(name: str, *args: str, cwd: Path, timeout: float = 600) -> str:
    """Run ``examples/<name>`` in a subprocess on the backend under test; returns stdout.

    The BLAS gets one thread, and with it gpunet's own CPU threads (their default is at
    most the BLAS's count): the example models are small, and on two shared cores a
    second thread only waits.
    """
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout


def result(stdout: str) -> dict[str, Any]:
    """The numbers an example reports on its ``result: {...}`` line (JSON)."""
    lines = [line for line in stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    assert len(lines) == 1, f"expected one line starting {RESULT_PREFIX!r} in:\n{stdout}"
    return json.loads(lines[0][len(RESULT_PREFIX) :])


def assert_picture(path: Path, min_bytes: int = 10_000) -> None:
    """``path`` is a PNG of at least ``min_bytes`` (an empty figure is smaller)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert len(data) >= min_bytes, f"{path}: {len(data)} bytes, expected a drawn figure"
