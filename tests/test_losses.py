"""Losses: values by hand, gradient checks, and the errors for bad input."""

from __future__ import annotations

import numpy as np
import pytest

import gpunet
from gpunet.losses import MSE, BinaryCrossEntropy, CrossEntropy


def test_mse_value_and_gradient(rng):
    pred, target = rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    loss_fn = MSE()
    value = loss_fn(gpunet.asarray(pred, dtype="float64"), gpunet.asarray(target, dtype="float64"))
    assert float(gpunet.to_numpy(value)) == pytest.approx(np.mean((pred - target) ** 2), rel=1e-12)
    assert gpunet.gradcheck(MSE(), pred, target).max_error < 1e-8


def test_loss_is_zero_dimensional_on_the_device():
    value = MSE()(gpunet.asarray(np.ones((2, 2))), gpunet.asarray(np.zeros((2, 2))))
    assert value.shape == ()
    assert float(gpunet.to_numpy(value)) == 1.0


@pytest.mark.parametrize("from_logits", [False, True])
def test_binary_cross_entropy(from_logits, rng):
    target = rng.integers(0, 2, size=(6, 1)).astype(np.float64)
    z = rng.standard_normal((6, 1))
    p = 1 / (1 + np.exp(-z))
    pred = z if from_logits else p
    expected = -np.mean(target * np.log(p) + (1 - target) * np.log(1 - p))
    loss_fn = BinaryCrossEntropy(from_logits=from_logits)
    value = loss_fn(gpunet.asarray(pred, dtype="float64"), gpunet.asarray(target, dtype="float64"))
    assert float(gpunet.to_numpy(value)) == pytest.approx(expected, rel=1e-10)
    assert gpunet.gradcheck(loss_fn, pred, target).max_error < 1e-7


def test_binary_cross_entropy_is_finite_at_certainty():
    pred = gpunet.asarray(np.array([[0.0], [1.0]]))
    target = gpunet.asarray(np.array([[1.0], [0.0]]))
    loss_fn = BinaryCrossEntropy()
    assert float(gpunet.to_numpy(loss_fn(pred, target))) == pytest.approx(100.0)
    assert np.all(np.isfinite(gpunet.to_numpy(loss_fn.backward())))
    logits = gpunet.asarray(np.array([[-1000.0], [1000.0]]))
    value = BinaryCrossEntropy(from_logits=True)(logits, target)
    assert float(gpunet.to_numpy(value)) == pytest.approx(1000.0)


def test_cross_entropy_value_and_gradient(rng):
    logits = rng.standard_normal((5, 4))
    labels = np.array([0, 3, 1, 1, 2])
    shifted = logits - logits.max(1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    expected = -np.mean(log_probs[np.arange(5), labels])
    value = CrossEntropy()(gpunet.asarray(logits, dtype="float64"), gpunet.asarray(labels))
    assert float(gpunet.to_numpy(value)) == pytest.approx(expected, rel=1e-12)
    assert gpunet.gradcheck(CrossEntropy(), logits, labels).max_error < 1e-8


def test_cross_entropy_rejects_labels_out_of_range():
    logits = gpunet.asarray(np.zeros((3, 4)))
    with pytest.raises(
        ValueError,
        match=r"CrossEntropy.forward: target labels must be in \[0, 3\] for 4 classes, got labels from 0 to 4",
    ):
        CrossEntropy()(logits, gpunet.asarray(np.array([0, 4, 1])))
    with pytest.raises(ValueError, match=r"got labels from -1 to 1"):
        CrossEntropy()(logits, gpunet.asarray(np.array([0, -1, 1])))


def test_cross_entropy_rejects_bad_shapes_and_fractional_labels():
    logits = gpunet.asarray(np.zeros((3, 4)))
    with pytest.raises(
        ValueError,
        match=r"CrossEntropy.forward: expected logits of shape \(N, C\), got shape \(3,\)",
    ):
        CrossEntropy()(gpunet.asarray(np.zeros(3)), gpunet.asarray(np.array([0, 1, 2])))
    with pytest.raises(
        ValueError, match=r"expected integer labels of shape \(3,\), got shape \(2,\)"
    ):
        CrossEntropy()(logits, gpunet.asarray(np.array([0, 1])))
    whole = CrossEntropy()(logits, gpunet.asarray(np.array([0.0, 1.0, 2.0])))
    exact = CrossEntropy()(logits, gpunet.asarray(np.array([0, 1, 2])))
    assert float(whole) == float(exact)  # whole-number floats are labels too
    with pytest.raises(TypeError, match="target must hold integer class labels, got fractions"):
        CrossEntropy()(logits, gpunet.asarray(np.array([0.0, 1.5, 2.0])))


@pytest.mark.parametrize("loss_fn", [MSE(), BinaryCrossEntropy()])
def test_shape_mismatch_is_refused(loss_fn):
    name = type(loss_fn).__name__
    with pytest.raises(
        ValueError, match=rf"{name}.forward: pred shape \(4, 1\) and target shape \(4,\) differ"
    ):
        loss_fn(gpunet.asarray(np.zeros((4, 1))), gpunet.asarray(np.zeros(4)))
