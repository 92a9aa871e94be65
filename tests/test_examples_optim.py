"""The optimizer, regularisation and gradient-flow examples, run with --quick."""

from __future__ import annotations

from tests.example_runner import assert_picture, result, run_example

REGULARISERS = ("L1", "L2", "dropout", "augmentation", "early stopping")


def test_optimizers_momentum_and_adaptive_methods_beat_sgd(tmp_path):
    r = result(run_example("optimizers.py", "--quick", "--out", "p", cwd=tmp_path))
    assert set(r) == {"SGD", "Momentum", "Nesterov", "Adagrad", "RMSprop", "Adam", "AdamW"}
    for name, row in r.items():
        assert row["test_accuracy"] > 0.9, f"{name}: {row}"
        assert row["epoch_ms"] > 0
        if name != "SGD":
            assert row["loss"] < r["SGD"]["loss"], f"{name} trains no faster than SGD: {r}"
    # On the Rosenbrock valley: Adam reaches (1, 1), momentum gets further than SGD, and
    # AdamW's weight decay settles short of the minimum.
    assert r["Adam"]["distance"] < 0.01 < r["SGD"]["distance"]
    assert r["Momentum"]["distance"] < r["SGD"]["distance"]
    assert r["Nesterov"]["distance"] < r["SGD"]["distance"]
    assert r["AdamW"]["distance"] > 10 * r["Adam"]["distance"]
    assert_picture(tmp_path / "p" / "optimizers_loss.png")
    assert_picture(tmp_path / "p" / "optimizers_rosenbrock.png")


def test_regularization_each_cure_narrows_the_gap_and_raises_test_accuracy(tmp_path):
    r = result(run_example("regularization.py", "--quick", "--out", "p", cwd=tmp_path))
    none = r["none"]
    assert none["train"] > 0.97 and none["memorised"] > 0.8  # it learns the wrong labels
    for variant in REGULARISERS:
        row = r[variant]
        assert abs(row["gap"]) < none["gap"] / 2, f"{variant} did not narrow the gap: {r}"
        assert row["test"] > none["test"] + 0.01, f"{variant}: {row} against {none}"
        assert row["memorised"] < none["memorised"] / 2, f"{variant}: {row}"
    assert r["early stopping"]["epochs"] < none["epochs"]  # it stopped early
    assert_picture(tmp_path / "p" / "regularization.png")


def test_gradient_flow_vanishing_and_clipping_the_explosion(tmp_path):
    r = result(run_example("gradient_flow.py", "--quick", "--out", "p", cwd=tmp_path))
    sigmoid = r["vanishing"]["sigmoid, N(0, 0.1^2) init"]
    relu = r["vanishing"]["ReLU, He init"]
    assert sigmoid["ratio"] < 1e-4  # the first layer gets almost nothing
    assert 0.1 < relu["ratio"] < 10  # He init keeps the flow even
    assert relu["accuracy"] > 0.7 > sigmoid["accuracy"]
    unclipped, clipped = r["exploding"]["no clipping"], r["exploding"]["clip_grad_norm(1.0)"]
    assert unclipped["first_norm"] > 100  # the same exploding start for both
    assert unclipped["diverged"] is not None and unclipped["diverged"] <= 10
    assert clipped["diverged"] is None and clipped["steps"] == 100
    assert clipped["last_loss"] < clipped["first_loss"] / 100
    assert_picture(tmp_path / "p" / "gradient_flow.png")
