"""The CUDA sequence kernels: against the reference under Numba's CUDA simulator, their
launch count, and their float32 PTX (compiled without a GPU)."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
from gpunet.kernels import _cuda, recurrent_cuda

import gpunet
from gpunet import backend
from gpunet.losses import CrossEntropy
from gpunet.nn import LSTM, Dense, Sequential
from gpunet.ops import recurrent
from gpunet.optim import Adam
from tests.test_kernels_recurrent import assert_close, run_sequence, sequence_case

SPECS = list(recurrent.SPECS.values())
SPEC_IDS = list(recurrent.SPECS)


def run_on_cuda_kernels(monkeypatch):
    """Route the engine's sequence ops to the CUDA kernels (NumPy arrays: the simulator)."""
    original = backend.kernel

    def kernel(op, xp):
        if "_sequence_" in op:
            return getattr(recurrent_cuda, f"{op}_cuda")
        return original(op, xp)

    monkeypatch.setattr(backend, "kernel", kernel)


# Block layouts: (elements a block aims at, most threads per block). One row per block
# and many blocks; several rows per block with fewer threads than elements.
LAYOUTS = {"row_per_block": (5, 1024), "threads_loop": (15, 8)}


@pytest.mark.cudasim
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_cuda_kernels_match_the_reference(spec, dtype, layout, rng, monkeypatch):
    run_on_cuda_kernels(monkeypatch)
    elements, threads = LAYOUTS[layout]
    monkeypatch.setattr(recurrent_cuda, "BLOCK_ELEMENTS", elements)
    monkeypatch.setattr(recurrent_cuda, "MAX_THREADS", threads)
    case = sequence_case(spec, 3, 3, 5, dtype, rng)
    with _cuda.counting_launches() as launched:
        fused = run_sequence(spec, case)
    kind = spec.name.split("_")[0]
    assert launched == [f"{kind}_forward", f"{kind}_backward"]
    monkeypatch.setenv("GPUNET_KERNELS", "0")
    assert_close(fused, run_sequence(spec, case), dtype)


def _training_step(steps, rng):
    """One LSTM -> Dense -> CrossEntropy -> Adam step; the parameter gradients."""
    gpunet.seed(0)
    model = Sequential(LSTM(3, 4), Dense(4, 2))
    loss_fn, optimizer = CrossEntropy(), Adam(model.parameters(), lr=1e-3)
    x = gpunet.asarray(rng.standard_normal((2, steps, 3)).astype(np.float32))
    y = gpunet.asarray(np.array([0, 1]))
    loss_fn(model(x), y)
    optimizer.zero_grad()
    model.backward(loss_fn.backward())
    grads = [np.array(p.grad, copy=True) for p in model.parameters()]
    optimizer.step()
    return grads


@pytest.mark.cudasim
@pytest.mark.parametrize("steps", [2, 6])
def test_a_training_step_launches_two_kernels_whatever_t(steps, monkeypatch):
    """The recurrence of an LSTM training step is one launch forward, one backward."""
    on_cpu = _training_step(steps, np.random.default_rng(steps))
    run_on_cuda_kernels(monkeypatch)
    with _cuda.counting_launches() as launched:
        on_cuda = _training_step(steps, np.random.default_rng(steps))
    assert launched == ["lstm_forward", "lstm_backward"]
    for got, expected in zip(on_cuda, on_cpu, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- PTX


@pytest.fixture(scope="module")
def compile_ptx():
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        pytest.skip("compiles real PTX; the simulator session runs the kernels instead")
    cuda = pytest.importorskip("numba.cuda")
    with pytest.MonkeyPatch.context() as patch:
        if not cuda.is_available():
            dispatcher = pytest.importorskip("numba.cuda.dispatcher")
            if not hasattr(dispatcher, "get_current_device"):
                pytest.skip("this numba.cuda asks the driver elsewhere: run it on a GPU")

            class Device:
                compute_capability = (9, 0)

            patch.setattr(dispatcher, "get_current_device", Device)
        yield lambda kernel, signature: cuda.compile_ptx(kernel.py_func, signature, cc=(9, 0))[0]


@pytest.mark.skipif(
    os.environ.get("GPUNET_BACKEND", "numpy") not in ("numpy", "cupy"),
    reason="the kernels are compiled once, in the numpy (or cupy) session",
)
def test_float32_kernels_compute_in_float32(compile_ptx):
    """No float64 instruction in the float32 PTX (a float64 literal would put some there),
    and float32 fused multiply-adds in the recurrent products."""
    from numba import types

    signatures = recurrent_cuda.cuda_signatures(types.float32)
    kernels = recurrent_cuda.cuda_kernels()
    assert sorted(kernels) == sorted(signatures)
    for name, kernel in kernels.items():
        ptx = compile_ptx(kernel, signatures[name])
        assert not re.findall(r"\.f64\b", ptx), name
        assert "fma.rn.f32" in ptx, name
    ptx64 = compile_ptx(
        kernels["lstm_forward"], recurrent_cuda.cuda_signatures(types.float64)["lstm_forward"]
    )
    assert "fma.rn.f64" in ptx64  # the check above can see float64 code
