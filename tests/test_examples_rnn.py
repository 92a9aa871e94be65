"""The recurrent examples, each run with --quick: they must show their point in numbers."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

# Both examples train hundreds of steps through 20-50 time steps; on the reference
# backends (array-api-strict) that takes many minutes, so they run in the numpy session.
pytestmark = pytest.mark.skipif(
    os.environ.get("GPUNET_BACKEND", "numpy") not in ("numpy", "cupy"),
    reason="the examples are run on the numpy and cupy backends",
)


def run_example(name: str, *args: str, cwd: Path) -> str:
    """Run an example script in a subprocess; returns what it printed."""
    run = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout


def number(pattern: str, text: str) -> float:
    match = re.search(pattern, text)
    assert match, f"{pattern!r} not found in:\n{text}"
    return float(match.group(1))


def test_adding_problem_lstm_solves_what_the_rnn_cannot(tmp_path):
    out = run_example("adding_problem.py", "--quick", "--out", str(tmp_path), cwd=tmp_path)
    assert "shorter sequence" in out  # --quick says that it uses T = 50
    rnn = number(r"rnn test mse: ([\d.]+)", out)
    lstm = number(r"lstm test mse: ([\d.]+)", out)
    assert rnn > 0.1, out  # near the 1/6 of always predicting 1.0
    assert lstm < 0.02, out
    assert (tmp_path / "adding_problem.png").stat().st_size > 10_000


def test_sequence_forecast_beats_the_naive_forecast(tmp_path):
    pytest.importorskip("statsmodels")
    out = run_example("sequence_forecast.py", "--quick", "--out", str(tmp_path), cwd=tmp_path)
    naive = number(r"naive test rmse: ([\d.]+)", out)
    lstm = number(r"lstm test rmse: ([\d.]+)", out)
    assert lstm < 0.8 * naive, out
    assert (tmp_path / "sequence_forecast.png").stat().st_size > 10_000
