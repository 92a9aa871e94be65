"""The CNN examples, run as scripts with --quick."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str, *args: str, cwd: Path) -> str:
    """Run an example script in a subprocess; returns what it printed.

    BLAS and Numba each get one thread: these models are small, and on two shared
    cores their two thread pools only wait for each other.
    """
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout


def _number(pattern: str, text: str) -> float:
    match = re.search(pattern, text)
    assert match, f"no line matching {pattern!r} in:\n{text}"
    return float(match.group(1))


def test_digits_cnn_quick(tmp_path):
    out = run_example("digits_cnn.py", "--quick", "--out", "tmp", cwd=tmp_path)
    assert _number(r"test accuracy: (\d\.\d+)", out) >= 0.95
    assert "confusion matrix" in out
    for name in ("digits_cnn_misclassified.png", "digits_cnn_filters.png"):
        assert (tmp_path / "tmp" / name).stat().st_size > 1000


@pytest.mark.slow
def test_digits_cnn_full_reaches_98_5_percent(tmp_path):
    out = run_example("digits_cnn.py", "--out", "tmp", cwd=tmp_path)
    assert _number(r"test accuracy: (\d\.\d+)", out) >= 0.985


def test_augmentation_cnn_quick(tmp_path):
    out = run_example("augmentation_cnn.py", "--quick", "--out", "tmp", cwd=tmp_path)
    plain = _number(r"without augmentation: (\d\.\d+)", out)
    augmented = _number(r"with augmentation: (\d\.\d+)", out)
    assert plain >= 0.85 and augmented >= 0.85
    assert (tmp_path / "tmp" / "augmentation_cnn.png").stat().st_size > 1000
