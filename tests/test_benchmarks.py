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
    # the printed table is the JSON line: each part in ms and as a share of the step
    # (separately timed medians on a shared machine: no order between them is asserted)
    assert "W3 LSTM, batch 8, T = 50" in result.stdout
    step = line["training step"]
    for part in parts:
        ms, share = line[part], 100 * line[part] / step
        assert f"  {part:<36} {ms:9.3f} ms {share:5.1f}%" in result.stdout
    from benchmarks.recurrent_profile import weight_gradient_gflops

    rate = weight_gradient_gflops(8, line["weight-gradient GEMMs"])
    assert f"weight-gradient GEMMs at {rate:.1f} GFLOP/s: " in result.stdout


def test_weight_gradient_rate_counts_both_weight_gemms():
    from benchmarks.recurrent_profile import weight_gradient_gflops

    # W3 at batch 64: 2 * T * batch * 4 * hidden * (hidden + features) flops, 0.52 GFLOP
    assert weight_gradient_gflops(64, 1.0) == pytest.approx(2 * 50 * 64 * 512 * 160 / 1e6)
    assert weight_gradient_gflops(64, 2.0) == pytest.approx(262.144)
