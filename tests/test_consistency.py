"""One seed, one model, the same numbers on every backend (to float32 tolerance)."""

from __future__ import annotations

import numpy as np

import gpunet
from gpunet import backend
from gpunet.data import batches
from gpunet.losses import CrossEntropy
from gpunet.nn import Dense, ReLU, Sequential, Tanh
from gpunet.optim import SGD

STEPS = 5


def first_losses(backend_name: str) -> list[float]:
    """Losses of the first mini-batch steps of a small MLP trained from seed 0."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 12)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    with backend.using(backend_name):
        gpunet.seed(0)
        model = Sequential(Dense(12, 16), Tanh(), Dense(16, 8), ReLU(), Dense(8, 3))
        loss_fn = CrossEntropy()
        optimizer = SGD(model.parameters(), lr=0.1, momentum=0.9)
        losses = []
        for xb, yb in batches(x, y, batch_size=16, seed=1):
            losses.append(loss_fn(model(xb), yb))
            optimizer.zero_grad()
            model.backward(loss_fn.backward())
            optimizer.step()
        return [float(gpunet.to_numpy(value)) for value in losses[:STEPS]]


def test_numpy_and_strict_reference_agree():
    np.testing.assert_allclose(
        first_losses("numpy"), first_losses("array_api_strict"), rtol=1e-5, atol=1e-6
    )


def test_backend_under_test_agrees_with_numpy():
    np.testing.assert_allclose(
        first_losses(backend.name()), first_losses("numpy"), rtol=1e-5, atol=1e-6
    )
