"""Parameter penalties: values, gradients (gradcheck), Dense integration, model total."""

from __future__ import annotations

import numpy as np
import pytest

import gpunet
from gpunet import regularizers
from gpunet.losses import MSE, Loss
from gpunet.nn import Dense, ReLU, Sequential
from gpunet.regularizers import L1, L1L2, L2


class PenaltyAsLoss(Loss):
    """The penalty of ``pred`` as a loss, so gradcheck can test ``gradient``."""

    def __init__(self, regularizer):
        self.regularizer = regularizer

    def forward(self, pred, target):
        self._weight = pred
        return gpunet.backend.namespace(pred).asarray(self.regularizer.penalty(pred))

    def backward(self):
        return self.regularizer.gradient(self._weight)


WEIGHT = np.array([[0.5, -1.5, 2.0], [-0.25, 0.75, -3.0]])


@pytest.mark.parametrize(
    ("regularizer", "expected"),
    [
        (L1(0.1), 0.1 * np.abs(WEIGHT).sum()),
        (L2(0.01), 0.01 * (WEIGHT**2).sum()),
        (L1L2(0.1, 0.01), 0.1 * np.abs(WEIGHT).sum() + 0.01 * (WEIGHT**2).sum()),
    ],
)
def test_penalty_values_follow_keras(regularizer, expected):
    value = regularizer.penalty(gpunet.asarray(WEIGHT, dtype="float64"))
    assert float(gpunet.to_numpy(value)) == pytest.approx(expected, rel=1e-14)


@pytest.mark.parametrize("regularizer", [L1(0.1), L2(0.01), L1L2(0.3, 0.2)], ids=repr)
def test_gradient_passes_gradcheck(regularizer):
    # No element near 0: |w| has a kink there.
    result = gpunet.gradcheck(PenaltyAsLoss(regularizer), WEIGHT, WEIGHT)
    assert result.max_error < 1e-8, str(result)


def test_dense_backward_adds_the_penalty_gradient(rng):
    x = gpunet.asarray(rng.standard_normal((6, 4)), dtype="float64")
    y = gpunet.asarray(rng.standard_normal((6, 3)), dtype="float64")
    model = Sequential(Dense(4, 5, regularizer=L2(0.1)), ReLU(), Dense(5, 3, regularizer=L1(0.05)))
    model.astype("float64")
    loss_fn = MSE()

    def total_loss():
        return float(gpunet.to_numpy(loss_fn(model(x), y) + regularizers.penalty(model)))

    total_loss()
    model.zero_grad()
    model.backward(loss_fn.backward())
    for layer in (model[0], model[2]):
        analytic = gpunet.to_numpy(layer.weight.grad)
        values = gpunet.to_numpy(layer.weight.data).copy()
        for index in [(0, 0), (1, 2), (3, 1)]:
            numeric = []
            for sign in (1, -1):
                shifted = values.copy()
                shifted[index] += sign * 1e-6
                layer.weight.data = gpunet.asarray(shifted, dtype="float64")
                numeric.append(total_loss())
            layer.weight.data = gpunet.asarray(values, dtype="float64")
            assert analytic[index] == pytest.approx((numeric[0] - numeric[1]) / 2e-6, abs=1e-7)


def test_model_penalty_sums_layers_and_skips_bias():
    model = Sequential(
        Dense(2, 2, regularizer=L2(0.5)), Dense(2, 2), Dense(2, 1, regularizer=L1(1.0))
    )
    model.astype("float64")
    expected = 0.5 * np.sum(gpunet.to_numpy(model[0].weight.data) ** 2) + np.sum(
        np.abs(gpunet.to_numpy(model[2].weight.data))
    )
    for layer in model:
        layer.bias.data = layer.bias.data + 100.0  # a bias is never penalised
    assert float(gpunet.to_numpy(regularizers.penalty(model))) == pytest.approx(expected)
    assert regularizers.penalty(Sequential(Dense(2, 2))) == 0.0


def test_negative_factors_raise():
    with pytest.raises(
        ValueError, match=r"L1L2: l2 must be a finite number in \[0, inf\), got -0\.1"
    ):
        L2(-0.1)
    with pytest.raises(ValueError, match=r"L1L2: l1 must be a finite number in \[0, inf\), got -1"):
        L1(-1)
