"""Stage a of benchmarks/gpu_check.sh: is everything the GPU run needs here? Seconds, not minutes.

    python -m benchmarks.preflight OUT_JSON [--device gpu|cpu]

Checks in order, and stops at the first that fails with one line saying what is missing:
the NVIDIA driver (``nvidia-smi``), the imports and their versions (NumPy, Numba,
numba-cuda, CuPy; PyTorch is optional), the CUDA runtime and driver versions as CuPy sees
them, gpunet choosing the cupy backend (which checks that numba-cuda imports with this
NumPy and suits the driver), and two training steps of a tiny CNN that must launch the
convolution, pooling and Adam kernels. ``--device cpu`` makes the same checks for the
NumPy backend (the dry run on a machine without a GPU). Prints one line per check and
writes them, with the versions, to OUT_JSON; exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np


class Missing(Exception):
    """Something the GPU run needs is not here; the message says what."""


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def check_driver(device: str) -> str:
    if device == "cpu":
        return "dry run: no GPU asked for, NumPy backend"
    if shutil.which("nvidia-smi") is None:
        raise Missing("nvidia-smi not found: no NVIDIA driver on this machine")
    query = ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"]
    run = subprocess.run(query, capture_output=True, text=True, timeout=20, check=False)
    if run.returncode != 0 or not run.stdout.strip():
        raise Missing(f"nvidia-smi finds no GPU: {(run.stderr or run.stdout).strip()[:200]}")
    return run.stdout.strip().splitlines()[0]


def check_imports(device: str) -> str:
    import numba

    found = {"numpy": np.__version__, "numba": numba.__version__}
    if device == "gpu":
        for module, distribution in (("cupy", None), ("numba.cuda", "numba-cuda")):
            try:
                importlib.import_module(module)
            except Exception as err:  # ImportError, or a NumPy mismatch inside numba.cuda
                raise Missing(f"{module} does not import: {err!r}") from err
            name = distribution or module
            found[name] = (
                _version(distribution) if distribution else sys.modules[module].__version__
            )
        if found["numba-cuda"] is None:
            found["numba-cuda"] = "not installed (Numba's own CUDA target)"
    try:
        import gpunet
    except Exception as err:  # one of gpunet's own dependencies is missing
        raise Missing(f"gpunet does not import: {err!r}") from err
    found["gpunet"] = gpunet.__version__
    found["torch"] = _version("torch") or "not installed (benchmark gpunet alone)"
    return ", ".join(f"{name} {version}" for name, version in found.items())


def check_cuda(device: str) -> str:
    if device == "cpu":
        return "dry run: no CUDA"
    import cupy

    runtime = cupy.cuda.runtime
    try:
        versions = (runtime.runtimeGetVersion(), runtime.driverGetVersion())
    except Exception as err:  # the runtime library itself is missing or broken
        raise Missing(f"CuPy cannot ask the CUDA runtime: {err!r}") from err
    runtime_version, driver_version = (f"{v // 1000}.{v % 1000 // 10}" for v in versions)
    if versions[1] == 0:
        raise Missing(
            f"no NVIDIA driver is loaded (CuPy's CUDA runtime {runtime_version} finds none)"
        )
    return f"CUDA runtime {runtime_version}, driver supports CUDA {driver_version}"


def check_backend(device: str) -> str:
    from gpunet import backend

    try:
        backend.set("cupy" if device == "gpu" else "numpy")
    except backend.BackendError as err:
        raise Missing(str(err)) from err
    return f"backend {backend.name()} on {backend.device_description()}"


def check_training_step(device: str) -> str:
    """Two Adam steps of a tiny CNN; on a GPU they must launch the CUDA kernels."""
    from gpunet.kernels import _cuda

    import gpunet
    from gpunet.losses import CrossEntropy
    from gpunet.nn import Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential
    from gpunet.optim import Adam

    gpunet.seed(0)
    model = Sequential(
        Conv2D(1, 4, 3, padding=1), ReLU(), MaxPool2D(2), Flatten(), Dense(4 * 4 * 4, 3)
    )
    loss_fn, optimizer = CrossEntropy(), Adam(model.parameters(), lr=1e-2)
    rng = np.random.default_rng(0)
    x = gpunet.asarray(rng.standard_normal((8, 1, 8, 8)))
    y = gpunet.asarray(rng.integers(0, 3, 8))
    losses = []
    with _cuda.counting_launches() as launched:
        for _ in range(2):
            loss = loss_fn(model(x), y)
            optimizer.zero_grad()
            model.backward(loss_fn.backward())
            optimizer.step()
            losses.append(float(loss))
    if not np.all(np.isfinite(losses)):
        raise Missing(f"the tiny training step gives a non-finite loss: {losses}")
    if device == "gpu" and not {"im2col", "max_forward", "adam"} <= set(launched):
        raise Missing(f"the tiny training step launched no CUDA kernels (launched {launched})")
    if device == "cpu":
        return f"loss {losses[0]:.4f} -> {losses[1]:.4f} on NumPy"
    return f"loss {losses[0]:.4f} -> {losses[1]:.4f}, {len(launched)} CUDA kernel launches"


CHECKS: dict[str, Callable[[str], str]] = {
    "driver": check_driver,
    "imports": check_imports,
    "cuda": check_cuda,
    "backend": check_backend,
    "training step": check_training_step,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.preflight", description=__doc__)
    parser.add_argument("out", type=Path, help="where to write the results (JSON)")
    parser.add_argument("--device", choices=("gpu", "cpu"), default="gpu")
    args = parser.parse_args(argv)
    results: dict[str, str] = {}
    status = 0
    for name, check in CHECKS.items():
        begin = time.perf_counter()
        try:
            results[name] = check(args.device)
        except Missing as err:
            results[name] = f"MISSING: {err}"
            print(f"preflight stopped at {name}: {err}", flush=True)
            status = 1
            break
        print(f"{name:14} {results[name]} ({time.perf_counter() - begin:.1f} s)", flush=True)
    args.out.write_text(json.dumps({"device": args.device, "ok": status == 0, **results}) + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
