"""Bad input at the losses, the optimizers, fit/evaluate/predict, seed and the GPUNET_*
variables: a clear error naming the object, or the correct result (the dtype rule)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import gpunet
from gpunet import backend
from gpunet.callbacks import Callback, EarlyStopping
from gpunet.losses import MSE, BinaryCrossEntropy, CrossEntropy
from gpunet.nn import Dense, Parameter, ReLU, Sequential
from gpunet.optim import SGD, Adagrad, Adam, AdamW, RMSprop

STRICT = backend.name() == "array_api_strict"
OPTIMIZERS = [SGD, Adagrad, RMSprop, Adam, AdamW]
FLOAT32 = backend.resolve_dtype("float32")


def arr(values, dtype="float32"):
    return gpunet.asarray(np.asarray(values), dtype=dtype)


def mlp():
    return Sequential(Dense(4, 8), ReLU(), Dense(8, 3))


def blobs(n=24, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0)


# --------------------------------------------------------------------------- losses


@pytest.mark.parametrize("loss_fn", [MSE(), BinaryCrossEntropy(), CrossEntropy()], ids=repr)
def test_loss_backward_before_forward_is_named(loss_fn):
    with pytest.raises(RuntimeError, match=rf"{type(loss_fn).__name__}.backward: called before"):
        loss_fn.backward()


@pytest.mark.parametrize("loss_fn", [MSE(), BinaryCrossEntropy()], ids=repr)
def test_loss_refuses_lists_complex_and_empty_batches(loss_fn):
    name = type(loss_fn).__name__
    good = arr([[0.5], [0.25]])
    with pytest.raises(TypeError, match=rf"{name}.forward: expected an array for pred, got list"):
        loss_fn([[0.5], [0.25]], good)
    with pytest.raises(TypeError, match=rf"{name}.forward: target has dtype complex64"):
        loss_fn(good, gpunet.asarray(np.ones((2, 1), np.complex64)))
    with pytest.raises(TypeError, match=rf"{name}.forward: target has dtype bool"):
        loss_fn(good, gpunet.asarray(np.ones((2, 1), bool)))
    with pytest.raises(ValueError, match=rf"{name}.forward: pred is an empty batch"):
        loss_fn(arr(np.zeros((0, 1))), arr(np.zeros((0, 1))))


def test_mse_casts_integer_targets_to_the_prediction_dtype():
    pred = arr([[0.5], [2.0]])
    by_int = MSE()(pred, gpunet.asarray(np.array([[1], [2]])))
    by_float = MSE()(pred, arr([[1.0], [2.0]]))
    assert by_int.dtype == FLOAT32
    assert float(by_int) == float(by_float) == pytest.approx(0.125)


@pytest.mark.parametrize(
    ("pred", "target", "from_logits", "which"),
    [
        ([[1.5]], [[1.0]], False, "pred"),
        ([[-0.1]], [[0.0]], False, "pred"),
        ([[0.5]], [[2.0]], False, "target"),
        ([[5.0]], [[-1.0]], True, "target"),
    ],
)
def test_binary_cross_entropy_refuses_values_outside_zero_one(pred, target, from_logits, which):
    loss_fn = BinaryCrossEntropy(from_logits=from_logits)
    with pytest.raises(ValueError, match=rf"BinaryCrossEntropy.forward: {which} must hold "
                       r"probabilities in \[0, 1\], got values outside"):  # fmt: skip
        loss_fn(arr(pred), arr(target))


def test_binary_cross_entropy_on_logits_takes_any_logit_and_nan_propagates():
    assert float(BinaryCrossEntropy(from_logits=True)(arr([[5.0]]), arr([[1.0]]))) > 0
    loss = BinaryCrossEntropy()(arr([[float("nan")], [0.5]]), arr([[1.0], [0.0]]))
    assert np.isnan(float(loss))


def test_cross_entropy_labels_are_checked():
    logits = arr(np.zeros((3, 4)))
    with pytest.raises(TypeError, match=r"CrossEntropy.forward: target must hold integer class "
                       r"labels, got dtype bool"):  # fmt: skip
        CrossEntropy()(logits, gpunet.asarray(np.array([True, False, True])))
    with pytest.raises(ValueError, match=r"CrossEntropy.forward: target labels must be in \[0, 3\] "
                       r"for 4 classes, got labels from 0 to 7"):  # fmt: skip
        CrossEntropy()(logits, gpunet.asarray(np.array([0, 7, 1])))
    with pytest.raises(ValueError, match=r"CrossEntropy.forward: logits is an empty batch"):
        CrossEntropy()(arr(np.zeros((0, 4))), gpunet.asarray(np.zeros(0, np.int64)))
    with pytest.raises(TypeError, match=r"CrossEntropy.forward: expected an array for target"):
        CrossEntropy()(logits, [0, 1, 2])


# --------------------------------------------------------------------------- optimizers


def one_parameter(values=(1.0, 2.0)):
    return Parameter(arr(values), "w")


@pytest.mark.parametrize("cls", OPTIMIZERS, ids=lambda c: c.__name__)
@pytest.mark.parametrize(
    ("lr", "error", "expected"),
    [
        ("0.1", TypeError, r"lr must be a number, got '0\.1'"),
        (-0.1, ValueError, r"lr must be a finite number in \[0, inf\), got -0\.1"),
        (float("nan"), ValueError, r"lr must be a finite number in \[0, inf\), got nan"),
        (float("inf"), ValueError, r"lr must be a finite number"),
        (True, TypeError, r"lr must be a number, got True"),
    ],
)
def test_bad_learning_rates_are_refused(cls, lr, error, expected):
    with pytest.raises(error, match=rf"{cls.__name__}: {expected}"):
        cls([one_parameter()], lr=lr)


@pytest.mark.parametrize(
    ("make", "error", "expected"),
    [
        (lambda p: SGD([p], lr=0.1, nesterov="yes"), TypeError, r"SGD: nesterov must be True"),
        (lambda p: Adam([p], betas="ab"), ValueError, r"Adam: betas must be a pair"),
        (lambda p: Adam([p], betas=(0.9, "0.9")), TypeError, r"Adam: betas\[1\] must be a num"),
        (lambda p: RMSprop([p], centered=1), TypeError, r"RMSprop: centered must be True"),
        (lambda p: SGD(Dense(2, 2), lr=0.1), TypeError, r"SGD: params must be the parameters, "
         r"got a Dense; pass model.parameters\(\)"),
        (lambda p: SGD(p, lr=0.1), TypeError, r"SGD: params must be an iterable of Parameters"),
        (lambda p: Adam([p, p]), ValueError, r"Adam: parameter 1 is parameter 0 again; list "
         r"each parameter once"),
    ],
)  # fmt: skip
def test_bad_optimizer_arguments_are_named(make, error, expected):
    with pytest.raises(error, match=expected):
        make(one_parameter())


@pytest.mark.parametrize("cls", OPTIMIZERS, ids=lambda c: c.__name__)
def test_a_float64_gradient_keeps_parameters_and_state_float32(cls):
    grads = [0.5, -0.25]
    results = []
    for dtype in ("float64", "float32"):
        p = one_parameter()
        optimizer = cls([p], lr=0.1)
        for _ in range(2):
            p.grad = arr(grads, dtype)
            optimizer.step()
        assert p.data.dtype == FLOAT32
        for key, value in optimizer.state_dict()["state"].items():
            if not key.endswith(".step"):
                assert value.dtype == FLOAT32, key
        results.append(gpunet.to_numpy(p.data))
    np.testing.assert_array_equal(*results)


@pytest.mark.parametrize("cls", OPTIMIZERS, ids=lambda c: c.__name__)
def test_integer_inputs_through_a_step_leave_float32_parameters(cls):
    model = Dense(2, 1)
    optimizer = cls(model.parameters(), lr=0.1)
    loss_fn = MSE()
    loss_fn(model(gpunet.asarray(np.array([[1, 2], [3, 4]]))), gpunet.asarray(np.array([[1], [0]])))
    model.backward(loss_fn.backward())
    optimizer.step()
    assert all(p.data.dtype == FLOAT32 for p in model.parameters())


def test_a_bad_gradient_stops_the_step_before_any_parameter_changes():
    first, second = one_parameter(), one_parameter((3.0,))
    optimizer = SGD([first, second], lr=0.1)
    first.grad, second.grad = arr([1.0, 1.0]), arr([1.0, 1.0])  # second: wrong shape
    with pytest.raises(ValueError, match=r"SGD.step: expected the gradient of parameter 1 \(w\) "
                       r"of shape \(1,\), got shape \(2,\)"):  # fmt: skip
        optimizer.step()
    np.testing.assert_array_equal(gpunet.to_numpy(first.data), [1.0, 2.0])
    assert optimizer.step_count == 0


def test_gradients_of_another_kind_are_type_errors():
    p = one_parameter()
    optimizer = Adam([p])
    p.grad = [1.0, 2.0]
    with pytest.raises(TypeError, match=r"Adam.step: expected an array for the gradient of "
                       r"parameter 0 \(w\), got list"):  # fmt: skip
        optimizer.step()
    p.grad = gpunet.asarray(np.ones(2, np.complex64))
    with pytest.raises(TypeError, match=r"Adam.step: the gradient of parameter 0 \(w\) has dtype "
                       r"complex64"):  # fmt: skip
        optimizer.step()
    p.grad = np.ones(2, np.float32) if STRICT else __import__("array_api_strict").ones(2)
    got = "numpy" if STRICT else "array_api_strict"
    with pytest.raises(backend.BackendMismatchError, match=rf"Adam.step: the gradient of "
                       rf"parameter 0 \(w\) is a {got} array"):  # fmt: skip
        optimizer.step()


@pytest.mark.parametrize(
    ("change", "error", "expected"),
    [
        ({"hyperparameters": {"lr": -5}}, ValueError, r"Adam: lr must be a finite number"),
        ({"hyperparameters": {"betas": [0.9, 1.5]}}, ValueError, r"Adam: betas\[1\] must be"),
        ({"hyperparameters": {"nope": 1}}, ValueError, r"unknown hyper-parameters \['nope'\]"),
        ({"step_count": -1}, ValueError, r"step_count must be >= 0, got -1"),
        ({"step_count": "3"}, TypeError, r"step_count must be an int"),
        ({"state": {"0.exp_avg": np.zeros(2, np.float32)}}, ValueError,
         r"the state of parameter 0 holds \['exp_avg'\], but Adam with these hyper-parameters "
         r"keeps \['exp_avg', 'exp_avg_sq', 'step'\]"),
        ({"state": {"0.step": np.asarray(0), "0.exp_avg": np.zeros(2, np.float32),
                    "0.exp_avg_sq": np.zeros(2, np.float32)}}, ValueError,
         r"state '0.step' must be >= 1, got 0"),
        ({"state": {"x.step": np.asarray(1)}}, ValueError, r"state key 'x.step' is not"),
        ({"optimizer": "SGD"}, ValueError, r"Adam.load_state_dict: state is from 'SGD'"),
    ],
)  # fmt: skip
def test_load_state_dict_checks_everything_before_applying_anything(change, error, expected):
    p = one_parameter()
    optimizer = Adam([p], lr=0.01)
    p.grad = arr([0.5, 0.5])
    optimizer.step()
    before = optimizer.state_dict()
    saved = {**before, **change}
    with pytest.raises(error, match=expected):
        optimizer.load_state_dict(saved)
    after = optimizer.state_dict()
    assert after["hyperparameters"] == before["hyperparameters"]
    assert after["step_count"] == before["step_count"] == 1
    for key, value in before["state"].items():
        np.testing.assert_array_equal(gpunet.to_numpy(after["state"][key]), gpunet.to_numpy(value))


# --------------------------------------------------------------------------- fit and friends


def fit(model=None, loss_fn=None, optimizer=None, x=None, y=None, **options):
    model = model if model is not None else mlp()
    xs, ys = blobs()
    return gpunet.fit(
        model,
        loss_fn if loss_fn is not None else CrossEntropy(),
        optimizer if optimizer is not None else SGD(model.parameters(), lr=0.1),
        xs if x is None else x,
        ys if y is None else y,
        epochs=options.pop("epochs", 1),
        verbose=0,
        **options,
    )


def test_fit_names_a_plain_function_passed_as_a_callback():
    def on_epoch_end(epoch, logs):
        pass

    with pytest.raises(TypeError, match=r"fit: callbacks\[1\] is the function on_epoch_end, not a "
                       r"gpunet Callback; subclass gpunet.callbacks.Callback"):  # fmt: skip
        fit(callbacks=[EarlyStopping(patience=2), on_epoch_end])
    with pytest.raises(TypeError, match=r"fit: callbacks\[0\] is the class EarlyStopping"):
        fit(callbacks=[EarlyStopping])
    with pytest.raises(TypeError, match=r"fit: callbacks must be a list of gpunet.callbacks"):
        fit(callbacks=EarlyStopping(patience=2))


@pytest.mark.parametrize(
    ("arguments", "error", "expected"),
    [
        ({"loss_fn": CrossEntropy}, TypeError, r"fit: loss_fn is the class CrossEntropy; pass an "
         r"instance such as CrossEntropy\(\)"),
        ({"loss_fn": "mse"}, TypeError, r"fit: loss_fn must be a loss such as"),
        ({"model": lambda x: x, "optimizer": SGD(mlp().parameters(), lr=0.1)}, TypeError,
         r"fit: model must be a gpunet.nn.Layer .*, got the function <lambda>"),
        ({"optimizer": SGD}, TypeError, r"fit: optimizer must be a gpunet optimizer"),
        ({"optimizer": SGD(mlp().parameters(), lr=0.1)}, ValueError,
         r"fit: the optimizer updates none of the model's parameters"),
        ({"x": [[0.0] * 4] * 24}, TypeError, r"fit: expected an array for x, got list"),
        ({"x": np.zeros((24, 4), np.complex64)}, TypeError, r"fit: x has dtype complex64"),
        ({"x": np.zeros((24, 4), object)}, TypeError, r"fit: x has dtype object"),
        ({"y": np.zeros(24, bool)}, TypeError, r"fit: y has dtype bool"),
        ({"x": np.zeros((0, 4), np.float32), "y": np.zeros(0, np.int64)}, ValueError,
         r"fit: x must hold samples on axis 0, got shape \(0, 4\)"),
        ({"validation_data": ([[0.0] * 4], [0])}, TypeError,
         r"fit: expected an array for validation x, got list"),
    ],
)  # fmt: skip
def test_fit_checks_its_arguments_before_the_first_batch(arguments, error, expected):
    with pytest.raises(error, match=expected):
        fit(**arguments)


def test_integer_data_through_fit_trains_as_float_data():
    x, y = blobs()
    weights = []
    for data in (np.round(x * 4).astype(np.int64), np.round(x * 4).astype(np.float32)):
        gpunet.seed(7)
        model = mlp()
        fit(model, x=data, y=y, epochs=2, batch_size=8)
        assert all(p.data.dtype == FLOAT32 for p in model.parameters())
        weights.append([gpunet.to_numpy(p.data) for p in model.parameters()])
    for by_int, by_float in zip(*weights, strict=True):
        np.testing.assert_array_equal(by_int, by_float)


def test_predict_and_evaluate_check_their_arguments():
    model = mlp()
    with pytest.raises(ValueError, match=r"predict: x must hold samples on axis 0, got shape"):
        gpunet.predict(model, np.zeros((0, 4), np.float32))
    with pytest.raises(TypeError, match=r"predict: expected an array for x, got list"):
        gpunet.predict(model, [[1.0, 2.0, 3.0, 4.0]])
    with pytest.raises(TypeError, match=r"predict: model must be a gpunet.nn.Layer"):
        gpunet.predict("model", np.zeros((2, 4), np.float32))
    with pytest.raises(TypeError, match=r"evaluate: x has dtype complex128"):
        gpunet.evaluate(model, CrossEntropy(), np.zeros((2, 4), complex), np.zeros(2, np.int64))
    with pytest.raises(TypeError, match=r"evaluate: loss_fn is the class MSE"):
        gpunet.evaluate(model, MSE, np.zeros((2, 4)), np.zeros((2, 3)))
    out = gpunet.predict(model, np.arange(8).reshape(2, 4))  # integers: cast, as float data
    assert out.dtype == FLOAT32


class _Counting(Callback):
    def __init__(self):
        self.epochs = 0

    def on_epoch_end(self, epoch, logs=None):
        self.epochs += 1


def test_a_callback_subclass_still_runs():
    counter = _Counting()
    fit(callbacks=[counter], epochs=2)
    assert counter.epochs == 2


# --------------------------------------------------------------------------- seed and variables


@pytest.mark.parametrize(
    ("value", "error", "expected"),
    [
        ("a", TypeError, r"gpunet.seed: the seed must be an int, got 'a'"),
        (1.5, TypeError, r"gpunet.seed: the seed must be an int, got 1\.5"),
        (-1, ValueError, r"gpunet.seed: the seed must be >= 0, got -1"),
        (None, TypeError, r"gpunet.seed: the seed must be an int, got None"),
    ],
)
def test_seed_takes_an_int(value, error, expected):
    with pytest.raises(error, match=expected):
        gpunet.seed(value)
    gpunet.seed(np.int64(3))  # NumPy's ints are ints


def _import_gpunet(**variables):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPUNET_")}
    env.update(variables)
    return subprocess.run(
        [sys.executable, "-c", "import gpunet; print(gpunet.backend.kernels_enabled())"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"GPUNET_BACKEND": "tensorflow"}, "ValueError: GPUNET_BACKEND must be one of numpy, "
         "cupy, array_api_strict, auto, got 'tensorflow'"),
        ({"GPUNET_KERNELS": "banana"}, "ValueError: GPUNET_KERNELS must be 0 (reference code "
         "only) or 1 (the default), got 'banana'"),
        ({"GPUNET_KERNELS": "yes"}, "GPUNET_KERNELS must be 0"),
        ({"GPUNET_DEVICE": "gpu0"}, "ValueError: GPUNET_DEVICE must be a GPU index, an int >= 0, "
         "got 'gpu0'"),
        ({"GPUNET_DEVICE": "-1"}, "GPUNET_DEVICE must be a GPU index"),
    ],
)  # fmt: skip
def test_bad_variables_fail_at_import_naming_the_variable(variables, expected):
    run = _import_gpunet(**variables)
    assert run.returncode != 0
    assert expected in run.stderr


@pytest.mark.parametrize(("value", "enabled"), [("0", "False"), ("1", "True"), ("", "True")])
def test_good_kernel_switches_import(value, enabled):
    run = _import_gpunet(GPUNET_KERNELS=value)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == enabled


def test_a_bad_kernel_switch_set_later_is_named_at_first_use(monkeypatch):
    monkeypatch.setenv("GPUNET_KERNELS", "banana")
    with pytest.raises(ValueError, match=r"GPUNET_KERNELS must be 0 .* got 'banana'"):
        gpunet.nn.ReLU()(arr([[1.0, -1.0]]))


# --------------------------------------------------------------------------- the rest


@pytest.mark.parametrize(
    ("make", "error", "expected"),
    [
        (lambda: EarlyStopping(patience=2.5), TypeError, r"EarlyStopping: patience must be an "
         r"int, got 2\.5"),
        (lambda: EarlyStopping(min_delta="0"), TypeError, r"EarlyStopping: min_delta must be a "
         r"number"),
        (lambda: EarlyStopping(monitor=3), TypeError, r"EarlyStopping: monitor must be a log "
         r"name"),
        (lambda: gpunet.callbacks.GradientMonitor(low="a"), TypeError,
         r"GradientMonitor: low must be a number"),
        (lambda: gpunet.callbacks.CSVLogger("log.csv", separator=";;"), ValueError,
         r"CSVLogger: separator must be one character"),
        (lambda: gpunet.callbacks.ModelCheckpoint("m.st", save_best_only="yes"), TypeError,
         r"ModelCheckpoint: save_best_only must be True or False"),
        (lambda: gpunet.data.augment.GaussianNoise("0.1"), TypeError,
         r"GaussianNoise: std must be a number"),
        (lambda: gpunet.data.augment.RandomFlip()(np.zeros((2, 1, 3, 3), complex)), TypeError,
         r"RandomFlip: input has dtype complex128"),
        (lambda: next(gpunet.data.batches([[1.0], [2.0]])), TypeError,
         r"batches: expected an array for x, got list"),
        (lambda: gpunet.gradcheck(Dense(2, 2).astype("float64"), np.zeros((2, 2)), eps=0),
         ValueError, r"gradcheck: eps must be a finite number in \(0, inf\)"),
        (lambda: gpunet.gradcheck(MSE(), np.zeros((2, 1), complex), np.zeros((2, 1))),
         TypeError, r"gradcheck: input 0 has dtype complex128"),
    ],
)  # fmt: skip
def test_callbacks_data_and_gradcheck_arguments_are_named(make, error, expected):
    with pytest.raises(error, match=expected):
        make()
