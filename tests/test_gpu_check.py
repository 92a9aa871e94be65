"""benchmarks/gpu_check.sh before its first GPU run: the dry run goes through every stage
on NumPy, a machine without a GPU stops at the preflight with one line, and the benchmark
workers turn TF32 off."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    os.environ.get("GPUNET_BACKEND", "numpy") != "numpy",
    reason="the dry run of the GPU check runs in the numpy session",
)

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"


def _check(out, *options, wheels=None, timeout=300):
    command = ["bash", str(SCRIPT), *options, str(out)] + ([str(wheels)] if wheels else [])
    env = {**os.environ, "PYTHON": sys.executable}
    env.pop("GPUNET_BACKEND", None)
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def _probe_wheel(folder):
    """A wheel of a module that is not installed here (the check must install it)."""
    files = {
        "probe_module/__init__.py": "VALUE = 1\n",
        "probe_module-0.1.dist-info/METADATA": "Metadata-Version: 2.1\nName: probe-module\nVersion: 0.1\n",
        "probe_module-0.1.dist-info/WHEEL": "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    files["probe_module-0.1.dist-info/RECORD"] = "".join(f"{name},,\n" for name in files)
    files["probe_module-0.1.dist-info/RECORD"] += "probe_module-0.1.dist-info/RECORD,,\n"
    with zipfile.ZipFile(folder / "probe_module-0.1-py3-none-any.whl", "w") as wheel:
        for name, text in files.items():
            wheel.writestr(name, text)


def _rows(out):
    lines = (out / "summary.txt").read_text().splitlines()
    assert lines[0].split() == ["stage", "status", "time", "result"]
    return [line.split(None, 2)[:2] + [line] for line in lines[1:]]


@pytest.mark.slow
def test_the_dry_run_goes_through_every_stage(tmp_path):
    out, wheels = tmp_path / "out", tmp_path / "wheels"
    wheels.mkdir()
    _probe_wheel(wheels)
    run = _check(out, "--dry", "--quick", wheels=wheels)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    rows = _rows(out)
    # Without PyTorch the benchmark times gpunet alone, and the summary says so.
    torch_note = ["torch"] if importlib.util.find_spec("torch") is None else []
    assert [stage for stage, *_ in rows] == [
        "wheels", "preflight", "tests", "example", "example", "example", "benchmark",
        *torch_note, "W1", "W2", "W3", "W6",
    ]  # fmt: skip
    if torch_note:
        assert rows[7][2].endswith(
            "PyTorch is not installed: timing gpunet alone (pip install torch to compare)"
        )
    assert rows[0][2].endswith("installed probe_module-0.1-py3-none-any.whl")
    assert (out / "site-packages" / "probe_module" / "__init__.py").exists()
    assert all(status == "ok" for stage, status, _ in rows[1:7])
    assert "== summary (dry run on NumPy" in run.stdout
    preflight = json.loads((out / "preflight.json").read_text())
    assert preflight["ok"] and preflight["backend"] == "backend numpy on cpu"
    assert " passed" in (out / "tests.log").read_text()
    for example in ("digits_mlp", "digits_cnn", "adding_problem"):
        assert (out / "examples" / f"{example}.status").read_text().split()[0] == "0"
    bench = [json.loads(line) for line in (out / "bench.jsonl").read_text().splitlines()]
    assert [line["workload"] for line in bench] == ["W1", "W2", "W3", "W6"]
    assert all(line["device"] == "cpu" and line["batch"] == 8 for line in bench)


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has a GPU")
def test_without_a_gpu_the_preflight_stops_the_check_with_one_line(tmp_path):
    run = _check(tmp_path, timeout=120)
    assert run.returncode == 1
    ((stage, status, line),) = _rows(tmp_path)
    assert (stage, status) == ("preflight", "FAILED")
    assert line.endswith(
        "preflight stopped at driver: nvidia-smi not found: no NVIDIA driver on this machine"
    )
    assert not (tmp_path / "tests.log").exists()  # nothing after the preflight ran


def test_unknown_option_is_refused(tmp_path):
    run = _check(tmp_path, "--fast", timeout=60)
    assert run.returncode == 64
    assert "gpu_check: unknown option --fast" in run.stderr


def test_workers_turn_tf32_off_on_both_sides(monkeypatch):
    from benchmarks.worker import tf32_off

    torch = pytest.importorskip("torch")
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    kept = cudnn.allow_tf32, matmul.allow_tf32  # torch's settings objects, set back by hand
    cudnn.allow_tf32 = matmul.allow_tf32 = True
    try:
        assert tf32_off("torch", "gpu") == {
            "torch.backends.cudnn.allow_tf32": False,
            "torch.backends.cuda.matmul.allow_tf32": False,
        }
    finally:
        cudnn.allow_tf32, matmul.allow_tf32 = kept
    monkeypatch.setenv("CUPY_TF32", "1")
    assert tf32_off("gpunet", "gpu") == {"CUPY_TF32": False}
    assert os.environ["CUPY_TF32"] == "0"
    assert tf32_off("torch", "cpu") == {}
