"""Gradient clipping by total norm and by value."""

from __future__ import annotations

import math

import numpy as np
import pytest

import gpunet
from gpunet.nn import Dense, Parameter
from gpunet.optim import clip_grad_norm, clip_grad_value


def params_with_grads(*grads):
    params = []
    for grad in grads:
        p = Parameter(gpunet.asarray(np.zeros(len(grad)), dtype="float64"))
        p.grad = gpunet.asarray(grad, dtype="float64")
        params.append(p)
    return params


def grads_of(params):
    return [gpunet.to_numpy(p.grad) for p in params]


def test_clip_grad_norm_scales_by_max_norm_over_norm_plus_eps():
    params = params_with_grads([3.0, 0.0], [0.0, 4.0])  # total 2-norm 5
    total = clip_grad_norm(params, max_norm=1.0)
    assert float(gpunet.to_numpy(total)) == pytest.approx(5.0, abs=1e-15)
    factor = 1.0 / (5.0 + 1e-6)
    np.testing.assert_allclose(grads_of(params)[0], [3 * factor, 0], rtol=1e-15)
    np.testing.assert_allclose(grads_of(params)[1], [0, 4 * factor], rtol=1e-15)


def test_clip_grad_norm_leaves_small_gradients_alone():
    params = params_with_grads([0.3, -0.4])
    total = clip_grad_norm(params, max_norm=1.0)
    assert float(gpunet.to_numpy(total)) == pytest.approx(0.5)
    np.testing.assert_array_equal(grads_of(params)[0], [0.3, -0.4])


def test_clip_grad_norm_infinity_norm_and_skipped_parameters():
    params = params_with_grads([1.0, -6.0], [2.0])
    params.append(Parameter(gpunet.asarray([1.0])))  # no gradient: skipped
    total = clip_grad_norm(params, max_norm=3.0, norm_type=math.inf)
    assert float(gpunet.to_numpy(total)) == 6.0
    np.testing.assert_allclose(grads_of(params[:2])[0], [0.5, -3.0], rtol=1e-6)


def test_clip_grad_norm_accepts_a_model():
    model = Dense(3, 2)
    model.weight.grad = model.weight.data * 0 + 10.0
    model.bias.grad = model.bias.data * 0 + 10.0
    clip_grad_norm(model, max_norm=1.0)
    norm = math.sqrt(
        sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads_of(model.parameters()))
    )
    assert norm == pytest.approx(1.0, rel=1e-5)


def test_clip_grad_value():
    params = params_with_grads([-3.0, 0.5, 2.0])
    clip_grad_value(params, clip_value=1.0)
    np.testing.assert_array_equal(grads_of(params)[0], [-1.0, 0.5, 1.0])


def test_bad_arguments_raise():
    params = params_with_grads([1.0])
    with pytest.raises(ValueError, match=r"clip_grad_norm: max_norm must be > 0, got -1"):
        clip_grad_norm(params, -1)
    with pytest.raises(ValueError, match=r"clip_grad_value: clip_value must be > 0, got 0"):
        clip_grad_value(params, 0)
    with pytest.raises(TypeError, match=r"clip_grad_norm: parameter 0 is float, not a Parameter"):
        clip_grad_norm([1.0], 1.0)
