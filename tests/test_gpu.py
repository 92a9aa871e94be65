"""The CUDA path end to end: the tests marked ``gpu`` run only with GPUNET_BACKEND=cupy on
a machine with a GPU (elsewhere they are skipped, saying so).

A training step of every layer kind and of every optimizer must queue its work without
one implicit synchronisation (``cupyx.allow_synchronize(False)`` raises on any): no host
read, no copy back, no wait inside a step. The same models and optimizers also run on the
backend under test, unmarked, so the GPU run is not their first.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import gpunet
from gpunet.losses import CrossEntropy
from gpunet.nn import (
    GRU,
    LSTM,
    RNN,
    AvgPool2D,
    BatchNorm1D,
    BatchNorm2D,
    Bidirectional,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    LeakyReLU,
    MaxPool2D,
    ReLU,
    Sequential,
    Sigmoid,
    Softmax,
    Softplus,
    Softsign,
    Tanh,
)
from gpunet.optim import SGD, Adagrad, Adam, AdamW, RMSprop

gpu = pytest.mark.gpu

# name -> (model, input shape); together every layer kind and activation
MODELS = {
    "dense": lambda: (
        Sequential(
            Dense(8, 16), LeakyReLU(), Dropout(0.2), Dense(16, 6), Softmax(), Dense(6, 4)
        ),
        (16, 8),
    ),
    "conv-pool": lambda: (
        Sequential(
            Conv2D(2, 4, 3, padding=1), BatchNorm2D(4), ReLU(), MaxPool2D(2),
            Conv2D(4, 4, 3, padding=1), Tanh(), AvgPool2D(2), GlobalAvgPool2D(), Dense(4, 4),
        ),
        (8, 2, 8, 8),
    ),
    "flatten": lambda: (
        Sequential(Conv2D(1, 2, 3), Sigmoid(), Flatten(), BatchNorm1D(72), Softplus(),
                   Dense(72, 4)),
        (8, 1, 8, 8),
    ),
    "recurrent": lambda: (
        Sequential(
            LSTM(3, 5, return_sequences=True), GRU(5, 5, return_sequences=True),
            Bidirectional(RNN(5, 4)), Softsign(), Dense(8, 4),
        ),
        (6, 7, 3),
    ),
}  # fmt: skip
OPTIMIZERS = {
    "sgd": lambda params: SGD(params, lr=0.1),
    "sgd-nesterov": lambda params: SGD(params, lr=0.1, momentum=0.9, nesterov=True),
    "adagrad": lambda params: Adagrad(params, lr=0.1, lr_decay=0.01, weight_decay=0.01),
    "rmsprop-centered": lambda params: RMSprop(params, lr=0.01, momentum=0.5, centered=True),
    "adam-amsgrad": lambda params: Adam(params, lr=1e-3, weight_decay=0.01, amsgrad=True),
    "adamw": lambda params: AdamW(params, lr=1e-3, weight_decay=0.01),
}
CASES = [(model, "adam-amsgrad") for model in MODELS] + [
    ("dense", optimizer) for optimizer in OPTIMIZERS if optimizer != "adam-amsgrad"
]


def _setup(model_name, optimizer_name):
    gpunet.seed(0)
    model, x_shape = MODELS[model_name]()
    rng = np.random.default_rng(0)
    x = gpunet.asarray(rng.standard_normal(x_shape))
    y = gpunet.asarray(rng.integers(0, 4, x_shape[0]))
    return model, CrossEntropy(), OPTIMIZERS[optimizer_name](model.parameters()), x, y


def _step(model, loss_fn, optimizer, x, y):
    loss = loss_fn(model(x), y)
    optimizer.zero_grad()
    model.backward(loss_fn.backward())
    optimizer.step()
    return loss


@pytest.mark.parametrize(("model_name", "optimizer_name"), CASES)
def test_every_layer_kind_and_optimizer_trains_on_the_backend_under_test(
    model_name, optimizer_name
):
    model, loss_fn, optimizer, x, y = _setup(model_name, optimizer_name)
    before = [gpunet.to_numpy(p.data).copy() for p in model.parameters()]
    losses = [float(_step(model, loss_fn, optimizer, x, y)) for _ in range(2)]
    assert all(np.isfinite(losses))
    after = [gpunet.to_numpy(p.data) for p in model.parameters()]
    assert all(not np.array_equal(a, b) for a, b in zip(after, before, strict=True))


@gpu
@pytest.mark.parametrize(("model_name", "optimizer_name"), CASES)
def test_a_training_step_makes_no_implicit_synchronisation(model_name, optimizer_name):
    import cupy
    import cupyx

    model, loss_fn, optimizer, x, y = _setup(model_name, optimizer_name)
    _step(model, loss_fn, optimizer, x, y)  # compiles, allocates, creates the state
    with cupyx.allow_synchronize(False):
        loss = _step(model, loss_fn, optimizer, x, y)
    assert isinstance(loss, cupy.ndarray)
    assert np.isfinite(float(loss))


@gpu
def test_parameters_and_state_live_on_the_gpu():
    model = Sequential(Dense(8, 4), ReLU(), Dense(4, 2))
    assert all(gpunet.backend.library_of(p.data) == "cupy" for p in model.parameters())


@gpu
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


@gpu
def test_out_of_range_labels_give_a_nan_loss_on_the_gpu():
    logits = gpunet.asarray(np.zeros((2, 3)))
    value = CrossEntropy()(logits, gpunet.asarray(np.array([0, 7])))
    assert np.isnan(float(value))
