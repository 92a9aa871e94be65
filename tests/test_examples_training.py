"""The training example: digits_mlp.py trained with fit, checkpointed, plotted."""

from __future__ import annotations

import re

from tests.example_runner import run_example


def test_digits_mlp_quick(tmp_path):
    out = run_example("digits_mlp.py", "--quick", "--out", str(tmp_path / "out"), cwd=tmp_path)
    table = [line.split() for line in out.splitlines() if re.match(r"^\s+\d+\s+\d\.\d{4}", line)]
    header = next(line.split() for line in out.splitlines() if line.startswith("epoch"))
    assert header == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "time"]
    assert 2 <= len(table) <= 12 and float(table[-1][1]) < float(table[0][1])
    accuracy = float(re.search(r"^test accuracy: (\d\.\d{4})$", out, re.MULTILINE).group(1))
    assert accuracy >= 0.93  # 12 epochs; the full run reaches >= 0.97
    reloaded = float(re.search(r"reloaded: test accuracy (\d\.\d{4})", out).group(1))
    assert reloaded == accuracy  # the checkpoint holds the restored best epoch
    png = tmp_path / "out" / "digits_mlp_curves.png"
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "out" / "digits_mlp.safetensors").stat().st_size > 40_000
