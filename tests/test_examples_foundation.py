"""The foundation's examples, run with --quick: XOR, activations, the modes of gradient descent."""

from __future__ import annotations

import pytest

from tests.example_runner import assert_picture, result, run_example


def test_xor_solves_the_table_for_most_seeds(tmp_path):
    r = result(run_example("xor.py", "--quick", "--out", "pictures", cwd=tmp_path))
    zero_zero, zero_one, one_zero, one_one = r["outputs"]
    assert zero_zero < 0.1 and zero_one > 0.9 and one_zero > 0.9 and one_one < 0.1
    assert r["solved"] and r["loss"] < 0.05
    assert r["seeds"] == 10 and r["seeds_solved"] >= 9, r
    assert_picture(tmp_path / "pictures" / "xor.png")


def test_activations_backward_gives_each_slope_and_the_sigmoid_stack_stalls(tmp_path):
    r = result(run_example("activations.py", "--quick", "--out", "pictures", cwd=tmp_path))
    slopes = r["max_slope"]
    assert slopes["sigmoid"] == pytest.approx(0.25, abs=1e-4)
    for name in ("tanh", "softsign", "ReLU", "leaky ReLU"):
        assert slopes[name] == pytest.approx(1.0, abs=1e-4), name
    assert r["derivative_error"] < 1e-6  # backward against a central difference
    assert r["softmax_sums"] == pytest.approx([1.0, 1.0, 1.0])
    losses = r["final_loss"]
    assert losses["sigmoid"] > 2.0  # ln 10 = 2.30 is guessing; 8 sigmoid layers barely learn
    for name, loss in losses.items():
        if name != "sigmoid":
            assert loss < losses["sigmoid"] - 0.5, f"{name}: {loss} against {losses}"
    assert_picture(tmp_path / "pictures" / "activations.png")


def test_gradient_descent_modes_minibatch_wins_in_time_and_epochs(tmp_path):
    r = result(run_example("gradient_descent_modes.py", "--quick", "--out", "p", cwd=tmp_path))
    batch, stochastic, mini = r["batch"], r["stochastic"], r["mini-batch"]
    assert r["target"] == 0.5
    assert batch["reached"] and stochastic["reached"] and mini["reached"], r
    # one update per epoch, one per sample (1347), one per 32 samples (43 a epoch)
    assert batch["updates"] == batch["epochs"]
    assert stochastic["updates"] == 1347 * stochastic["epochs"]
    assert mini["updates"] == 43 * mini["epochs"]
    assert mini["seconds"] < stochastic["seconds"], r  # after warm-up, medians of 3 runs
    assert mini["epochs"] < batch["epochs"], r
    assert_picture(tmp_path / "p" / "gradient_descent_modes.png")
