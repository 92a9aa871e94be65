"""The benchmark suite runs end to end (briefly) and reports what it measured."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    os.environ.get("GPUNET_BACKEND", "numpy") != "numpy",
    reason="the CPU benchmark runs in the numpy session",
)

ROOT = Path(__file__).resolve().parent.parent


def test_suite_times_each_workload_and_writes_json(tmp_path):
    out = tmp_path / "bench.jsonl"
    command = [sys.executable, "-m", "benchmarks", "--only", "W1", "W5"]
    command += ["--rounds", "2", "--processes", "2", "--seconds", "0.05", "--json", str(out)]
    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["workload"] for line in lines] == ["W1", "W5"]
    for line in lines:
        assert line["device"] == "cpu" and line["processes"] == 2
        assert line["gpunet_ms"] > 0 and line["gpunet_steps"] >= 2
        if line.get("torch_ms") is not None:
            assert line["ratio"] == pytest.approx(line["gpunet_ms"] / line["torch_ms"], rel=5e-3)
    try:
        import torch  # noqa: F401
    except ImportError:
        assert "PyTorch is not installed: timing gpunet alone" in result.stdout


@pytest.mark.parametrize("kernels", ["1", "0"])
def test_recurrent_profile_times_each_part_of_w3(tmp_path, kernels):
    out = tmp_path / "profile.jsonl"
    command = [sys.executable, "-m", "benchmarks.recurrent_profile", "--batch", "8"]
    command += ["--seconds", "0.01", "--json", str(out)]
    env = dict(os.environ, GPUNET_KERNELS=kernels)
    result = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (line,) = [json.loads(line) for line in out.read_text().splitlines()]
    parts = ["training step", "forward pass", "forward: step GEMMs", "forward: cells"]
    parts += ["backward pass", "backward: step GEMMs", "backward: cells", "weight-gradient GEMMs"]
    if kernels == "0":  # no cell kernels to time
        parts = [part for part in parts if not part.endswith("cells")]
    assert [key for key in line if key not in ("device", "batch")] == parts
    assert line["device"] == "cpu" and line["batch"] == 8
    assert all(line[part] > 0 for part in parts)
    # each part is a piece of the step (medians of separate runs: allow noise)
    assert line["forward: step GEMMs"] < line["forward pass"] < 1.5 * line["training step"]
    assert "W3 LSTM, batch 8, T = 50" in result.stdout
