"""Bad input at every layer's forward and backward: a clear error before any kernel runs,
or the correct result (the dtype rule); and no saved array that a later forward changes."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import gpunet
from gpunet import backend
from gpunet.nn import (
    AvgPool2D,
    BatchNorm1D,
    BatchNorm2D,
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

STRICT = backend.name() == "array_api_strict"

# name -> (a layer factory, a good input shape)
LAYERS = {
    "Dense": (lambda: Dense(3, 2), (4, 3)),
    "Conv2D": (lambda: Conv2D(2, 3, 3, padding=1), (2, 2, 5, 5)),
    "MaxPool2D": (lambda: MaxPool2D(2), (2, 3, 4, 4)),
    "AvgPool2D": (lambda: AvgPool2D(3, stride=1, padding=1), (2, 3, 4, 4)),
    "GlobalAvgPool2D": (GlobalAvgPool2D, (2, 3, 4, 4)),
    "BatchNorm1D": (lambda: BatchNorm1D(3), (4, 3)),
    "BatchNorm2D": (lambda: BatchNorm2D(3), (2, 3, 4, 4)),
    "Dropout": (lambda: Dropout(0.3), (4, 5)),
    "ReLU": (ReLU, (4, 5)),
    "Tanh": (Tanh, (4, 5)),
    "Sigmoid": (Sigmoid, (4, 5)),
    "Softsign": (Softsign, (4, 5)),
    "Softplus": (Softplus, (4, 5)),
    "LeakyReLU": (LeakyReLU, (4, 5)),
    "Softmax": (Softmax, (4, 5)),
    "Flatten": (Flatten, (2, 3, 4)),
    "Sequential": (lambda: Sequential(Dense(3, 4), Tanh(), Dense(4, 2)), (4, 3)),
}
NAMES = list(LAYERS)


def make(name):
    factory, shape = LAYERS[name]
    return factory(), shape


def first_name(name):
    """The layer whose method a Sequential's message names (its first or last layer)."""
    return {"Sequential": "Dense"}.get(name, name)


def data(shape, dtype="float32", seed=0):
    values = np.random.default_rng(seed).normal(size=shape)
    return gpunet.asarray(values, dtype=dtype)


def other_library_array(shape):
    """An array of a library other than the backend's."""
    values = np.ones(shape, dtype=np.float32)
    if STRICT:
        return values
    import array_api_strict

    return array_api_strict.asarray(values)


# --------------------------------------------------------------------------- forward


@pytest.mark.parametrize("name", NAMES)
def test_a_list_is_refused_by_name(name):
    layer, shape = make(name)
    nested = np.zeros(shape).tolist()
    with pytest.raises(TypeError, match=rf"{first_name(name)}.forward: expected an array for "
                       r"input, got list \(make one with gpunet.asarray\)"):  # fmt: skip
        layer(nested)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", ["complex64", "bool"])
def test_complex_and_boolean_input_are_type_errors(name, dtype):
    layer, shape = make(name)
    x = gpunet.asarray(np.ones(shape, dtype=dtype))
    with pytest.raises(TypeError, match=rf"{first_name(name)}.forward: input has dtype {dtype}; "
                       r"expected real numbers \(floating or integer\)"):  # fmt: skip
        layer(x)


@pytest.mark.parametrize("name", ["Dense", "MaxPool2D", "ReLU", "BatchNorm1D"])
@pytest.mark.parametrize("values", [["a"], [object()]], ids=["strings", "objects"])
def test_string_and_object_arrays_are_type_errors(name, values):
    layer, shape = make(name)
    x = np.full(shape, values[0], dtype=object if not isinstance(values[0], str) else "<U1")
    if STRICT and name in ("Dense", "BatchNorm1D"):
        # a NumPy array into array-api-strict parameters: the library is named first
        with pytest.raises(TypeError, match=rf"{name}.forward: input is a numpy array"):
            layer(x)
        return
    with pytest.raises(TypeError, match=rf"{name}.forward: input has dtype \w+; expected real"):
        layer(x)


@pytest.mark.parametrize("name", NAMES)
def test_an_empty_batch_is_refused(name):
    layer, shape = make(name)
    with pytest.raises(ValueError, match=rf"{first_name(name)}.forward: input is an empty batch "
                       r"\(shape \(0, .*\)\); expected at least one sample"):  # fmt: skip
        layer(data((0, *shape[1:])))


@pytest.mark.parametrize("name", NAMES)
def test_integer_input_is_cast_to_the_layer_dtype(name):
    layer, shape = make(name)
    if name == "Dropout":
        layer.eval()  # the same mask is not drawn twice
    ints = np.random.default_rng(3).integers(-3, 4, size=shape)
    y_int = layer(gpunet.asarray(ints))
    y_float = layer(gpunet.asarray(ints, dtype="float32"))
    assert y_int.dtype == y_float.dtype == backend.resolve_dtype("float32")
    np.testing.assert_array_equal(gpunet.to_numpy(y_int), gpunet.to_numpy(y_float))


@pytest.mark.parametrize("name", ["Dense", "Conv2D", "BatchNorm2D", "Sequential"])
def test_float64_input_is_cast_to_float32_parameters(name):
    layer, shape = make(name)
    y = layer(data(shape, "float64"))
    assert y.dtype == backend.resolve_dtype("float32")
    layer.backward(gpunet.asarray(np.ones(tuple(y.shape)), dtype="float64"))
    for p in layer.parameters():
        assert p.grad.dtype == p.data.dtype == backend.resolve_dtype("float32"), p.name


@pytest.mark.parametrize("name", ["ReLU", "MaxPool2D", "Flatten", "Dropout"])
def test_layers_without_parameters_keep_a_floating_dtype(name):
    layer, shape = make(name)
    y = layer(data(shape, "float64"))
    assert y.dtype == backend.resolve_dtype("float64")


@pytest.mark.parametrize("name", ["Dense", "Conv2D", "BatchNorm1D", "Sequential"])
def test_an_array_of_another_library_is_named(name):
    layer, shape = make(name)
    x = other_library_array(shape)
    got = "numpy" if STRICT else "array_api_strict"
    with pytest.raises(backend.BackendMismatchError, match=rf"{first_name(name)}.forward: "
                       rf"input is a {got} array but the parameters are"):  # fmt: skip
        layer(x)


@pytest.mark.parametrize(
    ("name", "shape", "expected"),
    [
        ("Dense", (4, 5), r"Dense.forward: expected input of shape \(N, \.\.\., 3\), got shape \(4, 5\)"),
        ("Conv2D", (2, 3, 5, 5), r"Conv2D.forward: expected input of shape \(N, 2, H, W\)"),
        ("Conv2D", (2, 5, 5), r"Conv2D.forward: expected input of shape \(N, 2, H, W\)"),
        ("MaxPool2D", (3, 4, 4), r"MaxPool2D.forward: expected input of shape \(N, C, H, W\)"),
        ("MaxPool2D", (1, 1, 1, 4), r"MaxPool2D.forward: kernel 2x2 is larger than the padded"),
        ("BatchNorm1D", (4, 2), r"BatchNorm1D.forward: expected input of shape \(N, 3\) or"),
        ("BatchNorm1D", (1, 3), r"BatchNorm1D.forward: training needs more than one value"),
        ("BatchNorm2D", (2, 3), r"BatchNorm2D.forward: expected input of shape \(N, 3, H, W\)"),
        ("GlobalAvgPool2D", (2, 3), r"GlobalAvgPool2D.forward: expected input of shape"),
        ("Flatten", (3,), r"Flatten.forward: expected input of shape \(N, d1, \.\.\.\)"),
        ("Softmax", (4,), None),
    ],
)  # fmt: skip
def test_wrong_input_shapes_are_named(name, shape, expected):
    layer = Softmax(axis=1) if name == "Softmax" else make(name)[0]
    if expected is None:
        expected = r"Softmax.forward: axis 1 does not exist in an input of shape \(4,\)"
    with pytest.raises(ValueError, match=expected):
        layer(data(shape))


# --------------------------------------------------------------------------- backward


@pytest.mark.parametrize("name", NAMES)
def test_backward_before_forward_is_named(name):
    layer, _ = make(name)
    last = "Dense" if name == "Sequential" else name
    with pytest.raises(RuntimeError, match=rf"{last}.backward: called before forward"):
        layer.backward(data((4, 2)))


@pytest.mark.parametrize("name", NAMES)
def test_a_gradient_of_the_wrong_shape_never_reaches_a_kernel(name):
    layer, shape = make(name)
    y = layer(data(shape))
    wrong = (*y.shape[:-1], y.shape[-1] + 1)
    last = "Dense" if name == "Sequential" else name
    with pytest.raises(ValueError, match=rf"{last}.backward: expected a gradient of shape "
                       rf"\({y.shape[0]}, .*\), got shape \({wrong[0]}, "):  # fmt: skip
        layer.backward(data(wrong))


@pytest.mark.parametrize("name", NAMES)
def test_a_gradient_that_is_a_list_or_complex_is_a_type_error(name):
    layer, shape = make(name)
    y = layer(data(shape))
    last = "Dense" if name == "Sequential" else name
    with pytest.raises(TypeError, match=rf"{last}.backward: expected an array for the gradient"):
        layer.backward(np.ones(tuple(y.shape)).tolist())
    with pytest.raises(TypeError, match=rf"{last}.backward: the gradient has dtype complex64"):
        layer.backward(gpunet.asarray(np.ones(tuple(y.shape), dtype=np.complex64)))


@pytest.mark.parametrize("name", NAMES)
def test_a_float64_gradient_gives_float32_gradients(name):
    layer, shape = make(name)
    if name == "Dropout":
        layer.eval()
    x = data(shape)
    grad = np.random.default_rng(4).normal(size=tuple(layer(x).shape))
    in_64 = layer.backward(gpunet.asarray(grad, dtype="float64"))
    grads_64 = [gpunet.to_numpy(p.grad) for p in layer.parameters()]
    layer.zero_grad()
    layer(x)
    in_32 = layer.backward(gpunet.asarray(grad, dtype="float32"))
    assert in_64.dtype == in_32.dtype == backend.resolve_dtype("float32")
    np.testing.assert_array_equal(gpunet.to_numpy(in_64), gpunet.to_numpy(in_32))
    for got, p in zip(grads_64, layer.parameters(), strict=True):
        np.testing.assert_array_equal(got, gpunet.to_numpy(p.grad))


# --------------------------------------------------------------------------- constructors


@pytest.mark.parametrize(
    ("make_layer", "error", "expected"),
    [
        (lambda: Dense(3.7, 2), TypeError, r"Dense: in_features must be an int, got 3\.7"),
        (lambda: Dense(3, 0), ValueError, r"Dense: out_features must be >= 1, got 0"),
        (lambda: Dense(3, True), TypeError, r"Dense: out_features must be an int, got True"),
        (lambda: Dense(2, 2, bias="no"), TypeError, r"Dense: bias must be True or False"),
        (lambda: Dense(2, 2, regularizer="l2"), TypeError, r"Dense: regularizer must be None"),
        (lambda: Dense(2, 2, init=[1]), ValueError, r"Dense: unknown initialiser \[1\]"),
        (lambda: Dense(2, 2, init=lambda shape, dtype: gpunet.asarray(np.zeros(3))), ValueError,
         r"Dense: the initialiser '<lambda>' returned an array of shape \(3,\)"),
        (lambda: Dense(2, 2, dtype="complex64"), TypeError, r"real floating dtype"),
        (lambda: Conv2D(1, 2, 3, bias=1), TypeError, r"Conv2D: bias must be True or False"),
        (lambda: Conv2D(1, 2, 2.5), TypeError, r"Conv2D: kernel_size must be an int or a pair"),
        (lambda: Dropout("0.5"), TypeError, r"Dropout: p must be a number, got '0\.5'"),
        (lambda: Dropout(1.0), ValueError, r"Dropout: p must be a finite number in \[0, 1\)"),
        (lambda: Dropout(float("nan")), ValueError, r"Dropout: p must be a finite number"),
        (lambda: LeakyReLU("a"), TypeError, r"LeakyReLU: negative_slope must be a number"),
        (lambda: Softmax(1.5), TypeError, r"Softmax: axis must be an int, got 1\.5"),
        (lambda: BatchNorm1D(3, eps=0), ValueError, r"BatchNorm1D: eps must be a finite number "
         r"in \(0, inf\)"),
        (lambda: BatchNorm2D(3.0), TypeError, r"BatchNorm2D: num_features must be an int"),
        (lambda: MaxPool2D(2, padding=2), ValueError, r"MaxPool2D: padding must be at most half"),
        (lambda: Sequential(Dense(2, 2), "relu"), TypeError, r"Sequential: argument 1 is str"),
    ],
)  # fmt: skip
def test_bad_constructor_arguments_are_named(make_layer, error, expected):
    with pytest.raises(error, match=expected):
        make_layer()


# --------------------------------------------------------------------------- saved arrays

KERNEL_PATHS = ["reference"] if STRICT else ["kernels", "reference"]


@pytest.mark.parametrize("path", KERNEL_PATHS)
@pytest.mark.parametrize("name", NAMES)
def test_a_forward_between_forward_and_backward_changes_no_saved_array(name, path, monkeypatch):
    """A twin sharing the layer's parameters and workspaces keeps forward 1's saved
    arrays; the layer runs forward 2 on other data; the twin's backward must give
    forward 1's gradients (no saved array is a buffer that forward 2 overwrote)."""
    monkeypatch.setenv("GPUNET_KERNELS", "1" if path == "kernels" else "0")
    layer, shape = make(name)
    if name == "Dropout":
        layer.eval()
    x1, x2 = data(shape, seed=1), data(shape, seed=2)
    grad = data(tuple(layer(x1).shape), seed=3)
    expected_input_grad = gpunet.to_numpy(layer.backward(grad)).copy()
    expected = [gpunet.to_numpy(p.grad).copy() for p in layer.parameters()]
    layer.zero_grad()
    layer(x1)
    twin = copy.copy(layer)
    if isinstance(layer, Sequential):
        twin.layers_ = [copy.copy(inner) for inner in layer.layers_]
    layer(x2)  # a validation batch, a monitoring callback
    got_input_grad = gpunet.to_numpy(twin.backward(grad))
    np.testing.assert_array_equal(got_input_grad, expected_input_grad)
    for want, p in zip(expected, layer.parameters(), strict=True):
        np.testing.assert_array_equal(gpunet.to_numpy(p.grad), want, err_msg=p.name)


@pytest.mark.cudasim
def test_cuda_convolution_saves_a_new_column_matrix_per_forward(rng):
    """The CUDA path's saved column matrix is never a buffer the next forward reuses."""
    from gpunet.kernels import conv as kernels

    geometry = ((1, 1), (1, 1), (1, 1))
    weight = rng.standard_normal((2, 1, 2, 2)).astype(np.float32)
    x1, x2 = (rng.standard_normal((1, 1, 3, 3)).astype(np.float32) for _ in range(2))
    _, col1 = kernels.conv2d_forward_cuda(x1, weight, None, *geometry)
    kept = col1.copy()
    _, col2 = kernels.conv2d_forward_cuda(x2, weight, None, *geometry)
    assert col2 is not col1
    np.testing.assert_array_equal(col1, kept)
