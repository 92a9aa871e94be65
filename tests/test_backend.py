"""The backend seam: switching, conversion, mixing, randomness."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import gpunet
from gpunet import backend
from tests.conftest import BACKEND


def test_current_backend_is_the_one_under_test():
    assert backend.name() == BACKEND


def test_unknown_backend_names_the_choices():
    with pytest.raises(
        ValueError, match=r"unknown backend 'torch'.*numpy, cupy, array_api_strict, auto"
    ):
        backend.set("torch")


def test_unknown_backend_from_environment_is_reported():
    code = "import gpunet"
    run = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "GPUNET_BACKEND": "tensorflow"},
        capture_output=True,
        text=True,
    )
    assert run.returncode != 0
    assert (
        "GPUNET_BACKEND must be one of numpy, cupy, array_api_strict, auto, got 'tensorflow'"
        in run.stderr
    )


def test_using_restores_the_previous_backend():
    with backend.using("numpy") as ns:
        assert backend.name() == "numpy"
        assert ns is backend.xp()
    assert backend.name() == BACKEND


def _cupy_usable() -> bool:
    try:
        backend._load_cupy()
    except backend.BackendError:
        return False
    return True


@pytest.mark.skipif(_cupy_usable(), reason="CuPy is usable here")
def test_cupy_where_unusable_says_why_and_what_to_install():
    with pytest.raises(backend.BackendError) as info:
        backend.set("cupy")
    message = str(info.value)
    assert "CuPy is not installed" in message or "no CUDA GPU is usable" in message
    if "not installed" in message:
        assert "pip install 'gpunet[cuda12]'" in message
    assert backend.name() == BACKEND  # a failed switch changes nothing


@pytest.mark.skipif(_cupy_usable(), reason="CuPy is usable here")
def test_auto_falls_back_to_numpy_and_says_so(capsys):
    backend.set("auto")
    assert backend.name() == "numpy"
    assert "backend 'auto' chose numpy" in capsys.readouterr().err


def test_asarray_float_default_is_float32(xp):
    x = gpunet.asarray(np.arange(6, dtype=np.float64).reshape(2, 3))
    assert x.dtype == xp.float32
    assert backend.library_of(x) == BACKEND
    assert gpunet.asarray([[1.5, 2.0]], dtype="float64").dtype == xp.float64
    assert gpunet.asarray([1.0], dtype=np.float64).dtype == xp.float64


def test_asarray_keeps_integer_labels(xp):
    labels = gpunet.asarray(np.array([0, 3, 9]))
    assert xp.isdtype(labels.dtype, "integral")
    np.testing.assert_array_equal(gpunet.to_numpy(labels), [0, 3, 9])


def test_to_numpy_round_trip(rng):
    data = rng.standard_normal((3, 4)).astype(np.float32)
    back = gpunet.to_numpy(gpunet.asarray(data))
    assert isinstance(back, np.ndarray)
    np.testing.assert_array_equal(back, data)


def test_mixing_two_backends_is_refused():
    other = "numpy" if BACKEND != "numpy" else "array_api_strict"
    a = gpunet.asarray(np.ones((2, 2)))
    with backend.using(other):
        b = gpunet.asarray(np.ones((2, 2)))
    with pytest.raises(backend.BackendMismatchError, match="arrays from two backends were mixed"):
        backend.namespace(a, b)


def test_model_refuses_input_from_another_backend():
    model = gpunet.nn.Dense(2, 3)
    other = "numpy" if BACKEND != "numpy" else "array_api_strict"
    with backend.using(other):
        x = gpunet.asarray(np.ones((4, 2)))
    with pytest.raises(backend.BackendMismatchError, match=f"{other.split('_')[-1]}"):
        model(x)


def test_seed_gives_the_same_model_on_every_backend():
    weights = {}
    for name in ("numpy", "array_api_strict"):
        with backend.using(name):
            gpunet.seed(7)
            model = gpunet.nn.Dense(5, 3)
            weights[name] = gpunet.to_numpy(model.weight.data)
    np.testing.assert_array_equal(weights["numpy"], weights["array_api_strict"])


def test_seed_repeats_a_run():
    def draw():
        gpunet.seed(3)
        return gpunet.to_numpy(gpunet.nn.Dense(4, 4).weight.data), gpunet.to_numpy(
            backend.random_uniform((5,), "float32")
        )

    (w1, u1), (w2, u2) = draw(), draw()
    np.testing.assert_array_equal(w1, w2)
    np.testing.assert_array_equal(u1, u2)
    assert 0.0 <= u1.min() and u1.max() < 1.0


def test_scatter_add_accumulates_repeated_indices(xp):
    target = gpunet.asarray(np.zeros((3, 2)))
    values = gpunet.asarray(np.ones((4, 2)))
    indices = gpunet.asarray(np.array([0, 2, 0, 0]))
    result = backend.scatter_add(target, indices, values)
    np.testing.assert_array_equal(gpunet.to_numpy(result), [[3, 3], [0, 0], [1, 1]])


def test_info_command_reports_backend_and_cupy():
    run = subprocess.run(
        [sys.executable, "-m", "gpunet", "info"], capture_output=True, text=True, check=True
    )
    assert f"backend:        {BACKEND}" in run.stdout
    assert "cupy:" in run.stdout
    assert "kernels:" in run.stdout
    assert "numba cache:" in run.stdout


def test_asarray_keeps_zero_dimensional_arrays():
    assert gpunet.asarray(np.array(2.5)).shape == ()
    assert gpunet.asarray(np.array(3), dtype="float64").shape == ()


@pytest.mark.skipif(backend.device_count() > 0, reason="a GPU is usable here")
def test_set_device_without_a_gpu_says_so():
    with pytest.raises(backend.BackendError, match=r"set_device\(0\): no CUDA GPU is usable"):
        backend.set_device(0)
