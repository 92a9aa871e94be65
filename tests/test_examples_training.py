"""The training example: digits_mlp.py trained with fit, checkpointed, plotted."""

from __future__ import annotations

import re

from tests.example_runner import assert_picture, result, run_example


def test_digits_mlp_quick(tmp_path):
    out = run_example("digits_mlp.py", "--quick", "--out", "out", cwd=tmp_path)
    table = [line.split() for line in out.splitlines() if re.match(r"^\s+\d+\s+\d\.\d{4}", line)]
    header = next(line.split() for line in out.splitlines() if line.startswith("epoch"))
    assert header == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "time"]
    assert 2 <= len(table) <= 12 and float(table[-1][1]) < float(table[0][1])
    r = result(out)
    assert r["test_accuracy"] >= 0.93  # 12 epochs; the full run reaches >= 0.97
    assert r["reloaded_accuracy"] == r["test_accuracy"]  # the checkpoint: the best epoch
    assert_picture(tmp_path / "out" / "digits_mlp_curves.png")
    assert (tmp_path / "out" / "digits_mlp.safetensors").stat().st_size > 40_000
