"""The CNN examples, run as scripts with --quick (and the digits CNN in full, marked slow)."""

from __future__ import annotations

import pytest

from tests.example_runner import assert_picture, result, run_example


def test_digits_cnn_quick(tmp_path):
    out = run_example("digits_cnn.py", "--quick", "--out", "p", cwd=tmp_path)
    assert result(out)["test_accuracy"] >= 0.95
    assert "confusion matrix" in out
    assert_picture(tmp_path / "p" / "digits_cnn_misclassified.png", min_bytes=1000)
    assert_picture(tmp_path / "p" / "digits_cnn_filters.png")


@pytest.mark.slow
def test_digits_cnn_full_reaches_98_percent(tmp_path):
    # 40 epochs in float32; the summation order, and so the last digit of the accuracy,
    # changes with the number of threads.
    out = run_example("digits_cnn.py", "--out", "p", cwd=tmp_path)
    assert result(out)["test_accuracy"] >= 0.98


def test_augmentation_keeps_the_cnn_right_on_moved_digits(tmp_path):
    r = result(run_example("augmentation_cnn.py", "--quick", "--out", "p", cwd=tmp_path))
    plain, augmented = r["plain"], r["augmented"]
    assert plain["test"] > 0.9 and augmented["test"] > 0.85  # centred digits: both fine
    assert augmented["moved_test"] > plain["moved_test"] + 0.2, r
    assert min(augmented["moved_test_per_seed"]) > max(plain["moved_test_per_seed"]), r
    assert_picture(tmp_path / "p" / "augmentation_cnn.png")
