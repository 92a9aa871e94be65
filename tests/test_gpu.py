"""The CUDA path end to end (runs only with GPUNET_BACKEND=cupy on a machine with a GPU)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import gpunet
from gpunet.losses import CrossEntropy
from gpunet.nn import Dense, Dropout, ReLU, Sequential
from gpunet.optim import Adam

pytestmark = pytest.mark.gpu


def test_parameters_and_state_live_on_the_gpu():
    model = Sequential(Dense(8, 4), ReLU(), Dense(4, 2))
    assert all(gpunet.backend.library_of(p.data) == "cupy" for p in model.parameters())


def test_a_training_step_makes_no_implicit_synchronisation():
    import cupy
    import cupyx

    model = Sequential(Dense(32, 64), ReLU(), Dropout(0.1), Dense(64, 10))
    loss_fn, optimizer = CrossEntropy(), Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    x = gpunet.asarray(rng.standard_normal((16, 32)))
    y = gpunet.asarray(rng.integers(0, 10, 16))
    for _ in range(2):  # the first step compiles and allocates; the second is measured
        with cupyx.allow_synchronize(False):
            loss = loss_fn(model(x), y)
            optimizer.zero_grad()
            model.backward(loss_fn.backward())
            optimizer.step()
    assert isinstance(loss, cupy.ndarray)
    assert np.isfinite(float(loss))


def test_nonexistent_gpu_index_is_a_clear_error():
    code = "import gpunet; gpunet.backend.set('cupy')"
    run = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "GPUNET_DEVICE": "99"},
        capture_output=True,
        text=True,
    )
    assert run.returncode != 0
    assert "GPUNET_DEVICE=99 but" in run.stderr
    assert "GPU(s) are visible" in run.stderr


def test_out_of_range_labels_give_a_nan_loss_on_the_gpu():
    logits = gpunet.asarray(np.zeros((2, 3)))
    value = CrossEntropy()(logits, gpunet.asarray(np.array([0, 7])))
    assert np.isnan(float(value))
