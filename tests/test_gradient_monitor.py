"""GradientMonitor: per-layer norms, one warning per layer, use in fit and by hand."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import gpunet
from gpunet.callbacks import Callback, GradientMonitor
from gpunet.losses import MSE
from gpunet.nn import Dense, Sequential, Tanh


def model_with_grads(rng, scale=1.0):
    model = Sequential(Dense(4, 3), Tanh(), Dense(3, 2)).astype("float64")
    x = gpunet.asarray(rng.standard_normal((5, 4)), dtype="float64")
    model.backward(gpunet.asarray(np.full((5, 2), scale), dtype="float64") + 0 * model(x))
    return model


def test_record_gives_each_layer_the_norm_of_its_own_gradients(rng):
    model = model_with_grads(rng)
    monitor = GradientMonitor()
    norms = monitor.record(model)
    assert list(norms) == ["0 (Dense)", "2 (Dense)"]
    for name, layer in (("0 (Dense)", model[0]), ("2 (Dense)", model[2])):
        grads = [gpunet.to_numpy(layer.weight.grad), gpunet.to_numpy(layer.bias.grad)]
        expected = np.sqrt(sum(np.sum(g**2) for g in grads))
        assert norms[name] == pytest.approx(expected, rel=1e-12)
    assert monitor.history["0 (Dense)"] == [norms["0 (Dense)"]]
    assert monitor.steps == [0]
    assert monitor.ratio() == pytest.approx(norms["0 (Dense)"] / norms["2 (Dense)"])


def test_every_skips_steps(rng):
    model = model_with_grads(rng)
    monitor = GradientMonitor(every=3)
    results = [monitor.record(model) for _ in range(7)]
    assert [r is not None for r in results] == [True, False, False, True, False, False, True]
    assert monitor.steps == [0, 3, 6]


def test_vanishing_gradients_warn_once_naming_the_layer(rng):
    model = model_with_grads(rng, scale=1e-12)
    monitor = GradientMonitor()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        monitor.record(model)
        monitor.record(model)  # already warned: silent
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2 and all(w.category is RuntimeWarning for w in caught)
    for layer, message in zip(("0 (Dense)", "2 (Dense)"), messages, strict=True):
        assert message.startswith(f"GradientMonitor: layer {layer} has gradient norm ")
        assert message.endswith("at step 0, below 1e-07: vanishing gradients")


def test_exploding_gradients_warn(rng):
    model = model_with_grads(rng, scale=1e6)
    with pytest.warns(RuntimeWarning, match=r"above 1000: exploding gradients") as caught:
        GradientMonitor().record(model)
    assert len(caught) == 2


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match=r"GradientMonitor: every must be >= 1, got 0"):
        GradientMonitor(every=0)
    with pytest.raises(ValueError, match=r"GradientMonitor: expected 0 <= low < high"):
        GradientMonitor(low=1.0, high=0.5)


def test_records_every_batch_in_fit(rng):
    fit = pytest.importorskip("gpunet.training").fit
    x = rng.standard_normal((40, 4))
    y = rng.standard_normal((40, 2))
    model = Sequential(Dense(4, 3), Tanh(), Dense(3, 2))
    monitor = GradientMonitor()
    assert isinstance(monitor, Callback)
    fit(model, MSE(), gpunet.optim.SGD(model.parameters(), lr=0.01), x, y,
        epochs=2, batch_size=10, callbacks=[monitor], metrics=(), verbose=0)  # fmt: skip
    assert len(monitor.steps) == 8
    assert all(len(v) == 8 and all(n > 0 for n in v) for v in monitor.history.values())
