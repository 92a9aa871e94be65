"""The recurrent examples, each run with --quick: they must show their point in numbers."""

from __future__ import annotations

import pytest

from tests.example_runner import assert_picture, result, run_example


def test_adding_problem_lstm_solves_what_the_rnn_cannot(tmp_path):
    out = run_example("adding_problem.py", "--quick", "--out", "p", cwd=tmp_path)
    assert "shorter sequence" in out  # --quick says that it uses T = 50
    r = result(out)
    assert r["length"] == 50
    assert r["rnn_mse"] > 0.1, r  # near the 1/6 of always predicting 1.0
    assert r["lstm_mse"] < 0.02, r
    assert_picture(tmp_path / "p" / "adding_problem.png")


def test_sequence_forecast_beats_the_naive_forecast(tmp_path):
    pytest.importorskip("statsmodels")
    r = result(run_example("sequence_forecast.py", "--quick", "--out", "p", cwd=tmp_path))
    assert len(r["lstm_rmse_per_seed"]) == 3
    assert max(r["lstm_rmse_per_seed"]) < 0.8 * r["naive_rmse"], r
    assert_picture(tmp_path / "p" / "sequence_forecast.png")
