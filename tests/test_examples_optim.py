"""The optimizer, regularisation and gradient-flow examples, run with --quick."""

from __future__ import annotations

import re

from tests.example_runner import run_example


def table(out: str, pattern: str) -> dict[str, tuple[float, ...]]:
    rows = {}
    for match in re.finditer(pattern, out, flags=re.MULTILINE):
        rows[match.group(1)] = tuple(float(v) for v in match.groups()[1:])
    return rows


def test_optimizers_example(tmp_path):
    out = run_example("optimizers.py", "--quick", "--out", str(tmp_path), cwd=tmp_path)
    rows = table(out, r"^(\w+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$")
    assert set(rows) == {"SGD", "Momentum", "Nesterov", "Adagrad", "RMSprop", "Adam", "AdamW"}
    for name, (_loss, accuracy, _seconds, _distance) in rows.items():
        assert accuracy > 0.9, f"{name}: test accuracy {accuracy}"
    # On the Rosenbrock valley Adam ends far closer to the minimum than plain SGD.
    assert rows["Adam"][3] < 0.5 * rows["SGD"][3]
    assert rows["Momentum"][3] < rows["SGD"][3]
    assert (tmp_path / "optimizers_loss.png").stat().st_size > 10_000
    assert (tmp_path / "optimizers_rosenbrock.png").stat().st_size > 10_000


def test_regularization_example(tmp_path):
    out = run_example("regularization.py", "--quick", "--out", str(tmp_path), cwd=tmp_path)
    rows = table(out, r"^(none|L1|L2|dropout|augmentation|early stopping)\s+(\d+)\s+([\d.]+)"
                      r"\s+([\d.]+)\s+(-?[\d.]+)$")  # fmt: skip
    assert len(rows) == 6
    assert rows["none"][1] == 1.0  # the baseline memorises its 150 images
    for variant in ("L1", "L2", "dropout", "augmentation"):
        assert rows[variant][3] < rows["none"][3], f"{variant} did not narrow the gap"
    assert rows["early stopping"][0] < rows["none"][0]  # it stopped early
    assert all(row[2] > 0.85 for row in rows.values())
    assert (tmp_path / "regularization.png").stat().st_size > 10_000


def test_gradient_flow_example(tmp_path):
    out = run_example("gradient_flow.py", "--quick", "--out", str(tmp_path), cwd=tmp_path)
    ratios = {
        m.group(1): (float(m.group(2)), float(m.group(3)))
        for m in re.finditer(
            r"^(sigmoid|ReLU).*ratio ([\d.e+-]+), train accuracy ([\d.]+)$", out, re.MULTILINE
        )
    }
    assert ratios["sigmoid"][0] < 1e-4  # the first layer gets almost nothing
    assert 0.1 < ratios["ReLU"][0] < 10  # He init keeps the flow even
    assert ratios["ReLU"][1] > 0.7 > ratios["sigmoid"][1]
    assert re.search(r"^no clipping .* -> (inf|nan) after \d+ steps$", out, re.MULTILINE)
    clipped = re.search(r"^clip_grad_norm\(1\.0\) .*loss ([\d.e+]+) -> ([\d.e+]+) after 100 steps",
                        out, re.MULTILINE)  # fmt: skip
    assert clipped and float(clipped.group(2)) < float(clipped.group(1)) / 100
    assert (tmp_path / "gradient_flow.png").stat().st_size > 10_000
