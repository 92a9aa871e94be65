"""The foundation's examples: XOR and the three modes of gradient descent."""

from __future__ import annotations

import re
import sys

import pytest

from tests.example_runner import EXAMPLES, run_example


def test_xor_example_solves_the_table(tmp_path):
    out = run_example("xor.py", "--quick", cwd=tmp_path)
    assert "solved: True" in out
    outputs = [
        float(line.split("|")[-1])
        for line in out.splitlines()
        if line.count("|") == 2 and not line.lstrip().startswith("x1")
    ]
    assert len(outputs) == 4
    assert outputs[0] < 0.1 and outputs[1] > 0.9 and outputs[2] > 0.9 and outputs[3] < 0.1


@pytest.mark.slow
def test_xor_succeeds_in_at_least_95_of_100_seeds():
    sys.path.insert(0, str(EXAMPLES))
    try:
        import xor
    finally:
        sys.path.remove(str(EXAMPLES))
    wins = sum(xor.solved(xor.train_xor(seed)[0]) for seed in range(100))
    assert wins >= 95, f"XOR solved in only {wins} of 100 seeds"


def test_gradient_descent_modes_example(tmp_path):
    out = run_example("gradient_descent_modes.py", "--quick", "--out", str(tmp_path), cwd=tmp_path)
    rows = {
        m.group(1): m.groups()
        for m in re.finditer(
            r"^(batch|stochastic|mini-batch)\s+(\d+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$",
            out,
            flags=re.MULTILINE,
        )
    }
    assert set(rows) == {"batch", "stochastic", "mini-batch"}
    updates = {mode: int(row[2]) for mode, row in rows.items()}
    assert updates == {"batch": 3, "stochastic": 3 * 1347, "mini-batch": 3 * 43}
    # one sample per update makes far more progress per epoch than one update per epoch
    assert float(rows["stochastic"][5]) > float(rows["batch"][5]) + 0.3
    assert (tmp_path / "gradient_descent_modes.png").stat().st_size > 10_000
