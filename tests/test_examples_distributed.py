"""The distributed example, alone and under ``mpirun -n 2``."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "distributed_digits.py"


def _run(prefix: list[str], cwd: Path) -> str:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    run = subprocess.run(
        [*prefix, sys.executable, str(EXAMPLE), "--quick", "--out", "tmp"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    return run.stdout


def _accuracies(out: str) -> list[float]:
    return [float(v) for v in re.findall(r"^test accuracy: ([0-9.]+)$", out, flags=re.M)]


def test_distributed_digits_runs_as_one_process(tmp_path):
    out = _run([], tmp_path)
    assert "ranks: 1, global batch 64 (64 per rank)" in out
    (accuracy,) = _accuracies(out)
    assert accuracy >= 0.9
    assert (tmp_path / "tmp" / "distributed_digits.png").stat().st_size > 0


@pytest.mark.skipif(
    importlib.util.find_spec("mpi4py") is None or shutil.which("mpirun") is None,
    reason="needs mpi4py and mpirun (pip install 'gpunet[distributed]')",
)
@pytest.mark.skipif(
    os.environ.get("GPUNET_BACKEND", "numpy") == "cupy",
    reason="two ranks need two GPUs on the cupy backend",
)
def test_distributed_digits_under_mpirun_prints_once(tmp_path):
    out = _run(["mpirun", "--oversubscribe", "-n", "2"], tmp_path)
    assert "ranks: 2, global batch 64 (32 per rank)" in out
    # 64*128 + 128 + 128*10 + 10 float32 parameters, in one bucket
    assert "allreduce per step: 38440 bytes in 1 call(s)" in out
    (accuracy,) = _accuracies(out)  # only rank 0 prints
    assert accuracy >= 0.9
