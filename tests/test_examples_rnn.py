"""The recurrent examples, each run with --quick: they must show their point in numbers."""

from __future__ import annotations

import pytest

from tests.example_runner import number, run_example


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
