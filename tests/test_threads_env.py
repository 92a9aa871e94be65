"""Thread settings in the environment that cannot work: a clear error or a stated choice,
never a deadlock or an abort (each case in a fresh interpreter, with a timeout)."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    os.environ.get("GPUNET_BACKEND", "numpy") != "numpy",
    reason="CPU threads: checked once, in the numpy session",
)
ROOT = pathlib.Path(__file__).resolve().parents[1]

TRAIN = """
import numpy as np, gpunet
from gpunet.kernels import _parallel
from gpunet.nn import Conv2D, Dense, Flatten, LSTM, MaxPool2D, ReLU, Sequential
from gpunet.losses import CrossEntropy
from gpunet.optim import Adam
gpunet.seed(0)
rng = np.random.default_rng(0)
cnn = Sequential(Conv2D(1, 4, 3, padding=1), ReLU(), MaxPool2D(2), Flatten(), Dense(64, 3))
lstm = Sequential(LSTM(3, 8), Dense(8, 3))
for model, x in ((cnn, rng.standard_normal((64, 1, 8, 8))), (lstm, rng.standard_normal((64, 5, 3)))):
    x, y = gpunet.asarray(x), gpunet.asarray(rng.integers(0, 3, 64))
    loss_fn, optimizer = CrossEntropy(), Adam(model.parameters())
    for _ in range(3):
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        model.backward(loss_fn.backward())
        optimizer.step()
    assert np.isfinite(float(loss))
print("threads", _parallel.threads())
"""


def _run(code, **env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_", "OMP_"))}
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-c", code], env=clean, cwd=ROOT, capture_output=True, text=True,
        timeout=240,
    )  # fmt: skip


@pytest.mark.parametrize(
    "env",
    [
        {"NUMBA_NUM_THREADS": "64"},  # more than the cores: Numba's pool is not used
        {"NUMBA_THREADING_LAYER": "tbb"},  # not installed
        {"NUMBA_THREADING_LAYER": "workqueue"},
        {"NUMBA_THREADING_LAYER": "banana"},
        {"OMP_NUM_THREADS": "0"},  # OpenBLAS takes its default
    ],
    ids=lambda env: "-".join(f"{k}={v}" for k, v in env.items()),
)
def test_thread_settings_that_cannot_work_leave_training_unharmed(env):
    done = _run(TRAIN, **env)
    assert done.returncode == 0, done.stderr[-2000:]
    threads = int(done.stdout.split()[-1])
    assert (
        1 <= threads <= (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 64)
    )


def test_one_blas_thread_keeps_gpunet_on_one_thread_and_info_says_so():
    done = _run(TRAIN, OMP_NUM_THREADS="1")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == "1"
    info = _run("from gpunet.__main__ import main; main(['info'])", OMP_NUM_THREADS="1")
    assert "1 thread(s) for gpunet's kernels" in info.stdout
    assert "Numba's thread pool is not used" in info.stdout


def test_numba_refusing_its_thread_count_is_one_clear_error():
    done = _run(TRAIN, NUMBA_NUM_THREADS="0")
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: gpunet's kernels need Numba, which refused to import")
    assert "NUMBA_NUM_THREADS" in last
