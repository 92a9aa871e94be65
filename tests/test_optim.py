"""Optimizers: three steps against a hand computation, validation, state_dict."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import gpunet
from gpunet import backend
from gpunet.nn import Parameter
from gpunet.optim import SGD, Adagrad, Adam, AdamW, RMSprop

START = [1.0, -2.0]
GRADS = [[0.5, -1.0], [0.1, 0.3], [-0.2, 0.4]]

# Each path: the fused kernel where the backend has one, and the pure reference.
PATHS = ["kernel", "reference"]


@pytest.fixture(params=PATHS)
def path(request, monkeypatch):
    monkeypatch.setenv("GPUNET_KERNELS", "1" if request.param == "kernel" else "0")
    return request.param


def run_three_steps(cls, **hyper):
    param = Parameter(gpunet.asarray(START, dtype="float64"))
    opt = cls([param], **hyper)
    for grad in GRADS:
        param.grad = gpunet.asarray(grad, dtype="float64")
        opt.step()
    return gpunet.to_numpy(param.data)


def hand(rule, **hyper):
    """Apply ``rule(p, g, state, t, **hyper)`` elementwise in plain Python floats."""
    result = []
    for i, p in enumerate(START):
        state: dict = {}
        for t, grads in enumerate(GRADS, start=1):
            p = rule(p, grads[i], state, t, **hyper)
        result.append(p)
    return np.array(result)


def sgd_rule(p, g, s, t, lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0):
    g = g + weight_decay * p
    if momentum:
        s["b"] = g if t == 1 else momentum * s["b"] + (1 - dampening) * g
        g = g + momentum * s["b"] if nesterov else s["b"]
    return p - lr * g


def adagrad_rule(p, g, s, t, lr=0.01, lr_decay=0.0, weight_decay=0.0,
                 initial_accumulator_value=0.0, eps=1e-10):  # fmt: skip
    g = g + weight_decay * p
    s["sum"] = s.get("sum", initial_accumulator_value) + g * g
    return p - lr / (1 + (t - 1) * lr_decay) * g / (math.sqrt(s["sum"]) + eps)


def rmsprop_rule(p, g, s, t, lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False):  # fmt: skip
    g = g + weight_decay * p
    s["v"] = alpha * s.get("v", 0.0) + (1 - alpha) * g * g
    v = s["v"]
    if centered:
        s["m"] = alpha * s.get("m", 0.0) + (1 - alpha) * g
        v = v - s["m"] ** 2
    step = g / (math.sqrt(v) + eps)
    if momentum:
        s["b"] = momentum * s.get("b", 0.0) + step
        step = s["b"]
    return p - lr * step


def adam_rule(p, g, s, t, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
              amsgrad=False, decoupled=False):  # fmt: skip
    b1, b2 = betas
    if decoupled:
        p = p * (1 - lr * weight_decay)
    else:
        g = g + weight_decay * p
    s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
    s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * g * g
    s["vmax"] = max(s.get("vmax", 0.0), s["v"]) if amsgrad else s["v"]
    m_hat = s["m"] / (1 - b1**t)
    v_hat = s["vmax"] / (1 - b2**t)
    return p - lr * m_hat / (math.sqrt(v_hat) + eps)


def test_sgd_momentum_by_hand(path):
    # b = 0.5, 0.9*0.5 + 0.1 = 0.55, 0.9*0.55 - 0.2 = 0.295 for the first element.
    result = run_three_steps(SGD, lr=0.1, momentum=0.9)
    assert result[0] == pytest.approx(1.0 - 0.1 * (0.5 + 0.55 + 0.295), abs=1e-15)


CASES = [
    (SGD, sgd_rule, {"lr": 0.1}),
    (SGD, sgd_rule, {"lr": 0.1, "momentum": 0.9, "dampening": 0.2, "weight_decay": 0.1}),
    (SGD, sgd_rule, {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    (Adagrad, adagrad_rule, {"lr": 0.1}),
    (Adagrad, adagrad_rule,
     {"lr": 0.1, "lr_decay": 0.5, "weight_decay": 0.1, "initial_accumulator_value": 0.3}),
    (RMSprop, rmsprop_rule, {}),
    (RMSprop, rmsprop_rule, {"momentum": 0.5, "centered": True, "weight_decay": 0.1}),
    (Adam, adam_rule, {"lr": 0.1}),
    (Adam, adam_rule, {"lr": 0.1, "weight_decay": 0.1, "amsgrad": True}),
]  # fmt: skip


@pytest.mark.parametrize(("cls", "rule", "hyper"), CASES, ids=lambda v: getattr(v, "__name__", ""))
def test_three_steps_match_hand_computation(cls, rule, hyper, path):
    expected = hand(rule, **hyper)
    np.testing.assert_allclose(run_three_steps(cls, **hyper), expected, rtol=0, atol=1e-14)


@pytest.mark.parametrize("amsgrad", [False, True])
def test_adamw_decouples_weight_decay(amsgrad, path):
    hyper = {"lr": 0.1, "weight_decay": 0.5, "amsgrad": amsgrad}
    expected = hand(adam_rule, decoupled=True, **hyper)
    np.testing.assert_allclose(run_three_steps(AdamW, **hyper), expected, rtol=0, atol=1e-14)
    coupled = run_three_steps(Adam, **hyper)
    assert np.abs(coupled - expected).max() > 1e-3  # the two decays really differ


def test_adam_first_step_moves_by_lr(path):
    # With bias correction the first Adam step is lr * g / (|g| + eps'), about lr * sign(g).
    param = Parameter(gpunet.asarray([0.0, 0.0], dtype="float64"))
    opt = Adam([param], lr=0.01)
    param.grad = gpunet.asarray([3.0, -1e-3], dtype="float64")
    opt.step()
    np.testing.assert_allclose(gpunet.to_numpy(param.data), [-0.01, 0.01], rtol=1e-4)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_float32_and_float64_parameters_keep_their_dtype(dtype, path):
    param = Parameter(gpunet.asarray(START, dtype=dtype))
    opt = Adam([param], lr=0.1, amsgrad=True)
    param.grad = gpunet.asarray(GRADS[0], dtype=dtype)
    opt.step()
    assert param.data.dtype == gpunet.asarray([0.0], dtype=dtype).dtype
    np.testing.assert_allclose(gpunet.to_numpy(param.data), [0.9, -1.9], rtol=1e-6)


def test_parameters_without_gradient_are_skipped(path):
    a = Parameter(gpunet.asarray([1.0], dtype="float64"))
    b = Parameter(gpunet.asarray([1.0], dtype="float64"))
    opt = Adam([a, b], lr=0.1)
    a.grad = gpunet.asarray([1.0], dtype="float64")
    opt.step()
    b.grad = gpunet.asarray([1.0], dtype="float64")
    opt.step()
    # b's first update is a first Adam step (bias correction of step 1): exactly lr.
    assert float(gpunet.to_numpy(b.data)[0]) == pytest.approx(0.9, abs=1e-7)
    assert opt.state[0]["step"] == 2 and opt.state[1]["step"] == 1
    assert opt.step_count == 2


def test_zero_grad_forgets_gradients():
    p = Parameter(gpunet.asarray([1.0]))
    opt = SGD([p], lr=0.1)
    p.grad = gpunet.asarray([1.0])
    opt.zero_grad()
    assert p.grad is None


def test_lr_is_read_and_written(path):
    p = Parameter(gpunet.asarray([1.0], dtype="float64"))
    opt = SGD([p], lr=0.1)
    opt.lr = 0.5
    p.grad = gpunet.asarray([1.0], dtype="float64")
    opt.step()
    assert float(gpunet.to_numpy(p.data)[0]) == pytest.approx(0.5)


BAD = [
    (SGD, {"lr": -0.1}, r"SGD: lr must be a finite number in \[0, inf\), got -0\.1"),
    (SGD, {"lr": 0.1, "momentum": -1}, r"SGD: momentum must be .*, got -1\.0"),
    (SGD, {"lr": 0.1, "weight_decay": -1e-4}, r"SGD: weight_decay must be .*, got -0\.0001"),
    (SGD, {"lr": 0.1, "nesterov": True}, r"SGD: nesterov=True needs momentum > 0 and dampening 0"),
    (SGD, {"lr": 0.1, "momentum": 0.9, "dampening": 0.1, "nesterov": True},
     r"got momentum 0\.9 and dampening 0\.1"),
    (Adagrad, {"lr": -1.0}, r"Adagrad: lr must be .*, got -1\.0"),
    (Adagrad, {"eps": 0.0}, r"Adagrad: eps must be a finite number in \(0, inf\), got 0\.0"),
    (Adagrad, {"lr_decay": -0.1}, r"Adagrad: lr_decay must be .*, got -0\.1"),
    (Adagrad, {"initial_accumulator_value": -1}, r"initial_accumulator_value must be .*, got -1"),
    (RMSprop, {"alpha": 1.0}, r"RMSprop: alpha must be a finite number in \[0, 1\), got 1\.0"),
    (RMSprop, {"eps": -1e-8}, r"RMSprop: eps must be .*, got -1e-08"),
    (RMSprop, {"momentum": -0.5}, r"RMSprop: momentum must be .*, got -0\.5"),
    (Adam, {"betas": (1.0, 0.999)}, r"Adam: betas\[0\] must be a finite number in \[0, 1\)"),
    (Adam, {"betas": (0.9, -0.1)}, r"Adam: betas\[1\] must be .*, got -0\.1"),
    (Adam, {"betas": (0.9,)}, r"Adam: betas must be a pair \(beta1, beta2\), got \(0\.9,\)"),
    (Adam, {"eps": 0}, r"Adam: eps must be a finite number in \(0, inf\), got 0\.0"),
    (AdamW, {"lr": -1e-3}, r"AdamW: lr must be .*, got -0\.001"),
    (AdamW, {"weight_decay": -0.01}, r"AdamW: weight_decay must be .*, got -0\.01"),
]  # fmt: skip


@pytest.mark.parametrize(("cls", "hyper", "message"), BAD, ids=[m for _, _, m in BAD])
def test_bad_hyperparameters_raise(cls, hyper, message):
    p = Parameter(gpunet.asarray([1.0]))
    with pytest.raises(ValueError, match=message):
        cls([p], **hyper)


def test_no_parameters_raise():
    with pytest.raises(ValueError, match="Adam: got an empty parameter list"):
        Adam([])


def test_non_parameters_raise():
    with pytest.raises(TypeError, match=r"SGD: parameter 0 is list, not a Parameter"):
        SGD([[1.0]], lr=0.1)


@pytest.mark.parametrize(
    ("cls", "hyper"),
    [
        (SGD, {"lr": 0.1, "momentum": 0.9}),
        (Adagrad, {"lr": 0.1}),
        (RMSprop, {"momentum": 0.5, "centered": True}),
        (Adam, {"amsgrad": True}),
        (AdamW, {}),
    ],
)
def test_state_dict_round_trip_continues_the_same_trajectory(cls, hyper, path):
    def make():
        params = [
            Parameter(gpunet.asarray([[1.0, 2.0], [3.0, 4.0]], dtype="float64")),
            Parameter(gpunet.asarray([0.5], dtype="float64")),
        ]
        return params, cls(params, **hyper)

    def feed(params, value):
        for p in params:
            p.grad = p.data * 0 + value

    params, opt = make()
    for value in (0.3, -0.2):
        feed(params, value)
        opt.step()
    saved = opt.state_dict()
    json.dumps(saved["hyperparameters"])  # plain Python values only
    assert saved["optimizer"] == cls.__name__ and saved["step_count"] == 2
    assert all(key.split(".")[0] in ("0", "1") for key in saved["state"])
    assert int(backend.to_numpy(saved["state"]["0.step"])) == 2

    copies, restored = make()
    for p, q in zip(params, copies, strict=True):
        q.data = gpunet.asarray(gpunet.to_numpy(p.data), dtype="float64")
    restored.load_state_dict(
        {**saved, "state": {k: backend.to_numpy(v).copy() for k, v in saved["state"].items()}}
    )
    for group in (params, copies):
        feed(group, 0.7)
    opt.step()
    restored.step()
    for p, q in zip(params, copies, strict=True):
        np.testing.assert_array_equal(gpunet.to_numpy(p.data), gpunet.to_numpy(q.data))
    assert restored.step_count == 3


def test_load_state_dict_from_another_optimizer_raises():
    p = Parameter(gpunet.asarray([1.0]))
    saved = SGD([p], lr=0.1).state_dict()
    with pytest.raises(ValueError, match=r"Adam.load_state_dict: state is from 'SGD', not Adam"):
        Adam([p]).load_state_dict(saved)


def test_load_state_dict_with_another_shape_raises():
    p = Parameter(gpunet.asarray([1.0, 2.0]))
    opt = Adam([p])
    p.grad = gpunet.asarray([1.0, 1.0])
    opt.step()
    other = Adam([Parameter(gpunet.asarray([1.0, 2.0, 3.0]))])
    with pytest.raises(ValueError, match=r"state '0.exp_avg' has shape \(2,\), but parameter 0 "
                       r"has shape \(3,\)"):  # fmt: skip
        other.load_state_dict(opt.state_dict())
    fewer = Adam([Parameter(gpunet.asarray([1.0]))])
    saved = opt.state_dict()
    saved["state"] = {"3.exp_avg": saved["state"]["0.exp_avg"]}
    with pytest.raises(ValueError, match=r"state '3.exp_avg' is for parameter 3, but the optimizer "
                       r"has 1 parameters"):  # fmt: skip
        fewer.load_state_dict(saved)


def test_repr_lists_hyperparameters():
    p = Parameter(gpunet.asarray([1.0]))
    assert repr(SGD([p], lr=0.1, momentum=0.9)) == (
        "SGD(lr=0.1, momentum=0.9, dampening=0.0, nesterov=False, weight_decay=0.0)"
    )
