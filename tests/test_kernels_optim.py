"""Fused optimizer kernels (CPU) against the pure update functions; the CUDA kernels are
tested under the simulator in tests/test_cuda_kernels.py with the same configurations."""

from __future__ import annotations

import numpy as np
import pytest

from gpunet import backend
from gpunet.optim.adagrad import adagrad_update
from gpunet.optim.adam import adam_update
from gpunet.optim.rmsprop import rmsprop_update
from gpunet.optim.sgd import sgd_update

RTOL = {"float32": 2e-6, "float64": 1e-13}

# (rule, number of state arrays, hyper-parameters); every combination of the switches.
CONFIGS = [
    ("sgd", 1, {"lr": 0.1, "momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0,
                "nesterov": False, "first": False}),
    ("sgd", 1, {"lr": 0.1, "momentum": 0.9, "dampening": 0.1, "weight_decay": 0.01,
                "nesterov": False, "first": True}),
    ("sgd", 1, {"lr": 0.1, "momentum": 0.9, "dampening": 0.0, "weight_decay": 0.0,
                "nesterov": True, "first": False}),
    ("adagrad", 1, {"lr": 0.1, "lr_decay": 0.01, "weight_decay": 0.1, "eps": 1e-10,
                    "step": 3}),
    ("rmsprop", 3, {"lr": 0.01, "alpha": 0.9, "eps": 1e-8, "weight_decay": 0.0,
                    "momentum": 0.0, "centered": False}),
    ("rmsprop", 3, {"lr": 0.01, "alpha": 0.9, "eps": 1e-8, "weight_decay": 0.1,
                    "momentum": 0.5, "centered": True}),
    ("adam", 3, {"lr": 0.01, "beta1": 0.9, "beta2": 0.99, "eps": 1e-8, "weight_decay": 0.0,
                 "step": 4, "amsgrad": False, "decoupled": False}),
    ("adam", 3, {"lr": 0.01, "beta1": 0.8, "beta2": 0.95, "eps": 1e-8, "weight_decay": 0.1,
                 "step": 2, "amsgrad": True, "decoupled": False}),
    ("adam", 3, {"lr": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.1,
                 "step": 7, "amsgrad": True, "decoupled": True}),
]  # fmt: skip
REFERENCE = {
    "sgd": sgd_update,
    "adagrad": adagrad_update,
    "rmsprop": rmsprop_update,
    "adam": adam_update,
}


# Which outputs each setting changes (unused state slots must stay untouched).
def used_outputs(rule, hyper):
    if rule == "sgd":
        return [True, hyper["momentum"] != 0]
    if rule == "rmsprop":
        return [True, True, hyper["centered"], hyper["momentum"] > 0]
    if rule == "adam":
        return [True, True, True, hyper["amsgrad"]]
    return [True, True]


def make_arrays(rng, shape, n_state, dtype):
    param = rng.standard_normal(shape).astype(dtype)
    grad = rng.standard_normal(shape).astype(dtype)
    # Positive state: second moments must be >= squared first moments (centered RMSprop).
    state = [np.abs(rng.standard_normal(shape)).astype(dtype) + 1 for _ in range(n_state)]
    if n_state == 3:
        state[1] = (0.1 * rng.standard_normal(shape)).astype(dtype)
    return param, grad, state


def expected_outputs(rule, param, grad, state, hyper):
    outputs = REFERENCE[rule](param, grad, *state, **hyper)
    return [np.asarray(o) for o in outputs]


def check(rule, hyper, run, rng, shape, dtype):
    n_state = 1 if rule in ("sgd", "adagrad") else 3
    param, grad, state = make_arrays(rng, shape, n_state, dtype)
    if rule == "adam":
        state = [state[1], state[0], state[2]]  # exp_avg, exp_avg_sq, max_exp_avg_sq
    expected = expected_outputs(rule, param, grad, state, hyper)
    before = [a.copy() for a in (param, *state)]
    run(param, grad, *state, **hyper)
    for got, want, old, used in zip(
        (param, *state), expected, before, used_outputs(rule, hyper), strict=True
    ):
        assert got.dtype == np.dtype(dtype)
        if used:
            np.testing.assert_allclose(got, want, rtol=RTOL[dtype], atol=RTOL[dtype])
        else:
            np.testing.assert_array_equal(got, old)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("rule", "n_state", "hyper"), CONFIGS, ids=lambda v: str(v)[:12])
def test_cpu_kernel_matches_reference(rule, n_state, hyper, dtype, rng):
    from gpunet.kernels import optim as kernels

    for shape in [(1,), (7, 3), (2, 3, 5, 4)]:
        check(rule, hyper, getattr(kernels, f"{rule}_cpu"), rng, shape, dtype)


def test_kernels_are_registered_for_numpy_only():
    from gpunet import kernels

    for op in ("sgd", "adagrad", "rmsprop", "adam"):
        assert kernels.available()[op] == "optim"
        assert kernels.lookup(op, backend.xp()) is not None or backend.name() != "numpy"
    assert kernels.lookup("adam", None) is None


def test_non_contiguous_gradient_falls_back_to_reference(monkeypatch):
    import gpunet
    from gpunet.nn import Parameter
    from gpunet.optim import Adam

    if backend.name() != "numpy":
        pytest.skip("contiguity matters on NumPy and CuPy only")
    grad = np.arange(12.0).reshape(3, 4).T  # Fortran order: not C-contiguous
    fused, plain = (Parameter(gpunet.asarray(np.ones((4, 3)), dtype="float64")) for _ in "ab")
    opt_fused, opt_plain = Adam([fused], lr=0.1), Adam([plain], lr=0.1)
    fused.grad = grad
    assert opt_fused.fused_kernel(fused) is None
    opt_fused.step()
    monkeypatch.setenv("GPUNET_KERNELS", "0")
    plain.grad = np.ascontiguousarray(grad)
    opt_plain.step()
    np.testing.assert_array_equal(gpunet.to_numpy(fused.data), gpunet.to_numpy(plain.data))
