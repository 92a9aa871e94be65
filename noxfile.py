"""The test matrix: ``nox`` runs the default sessions, ``nox -s NAME`` one of them.

Sessions (``nox -l`` lists them; ``nox -t tests`` runs the three test sessions):
    lint                    ruff over the code base
    tests-numpy             the whole suite on NumPy, the examples and two-rank runs too
    tests-array_api_strict  the whole suite on the array API reference (array-api-strict)
    tests-cupy              the whole suite on CuPy; skips with a message without a GPU
    cudasim                 the CUDA kernels on the CPU under Numba's CUDA simulator
    ptx                     every CUDA kernel compiled to PTX without a GPU (numba-cuda
                            and NVIDIA's compiler wheels, about 1 GB; not in the default run)
    crosscheck              layers and optimizers against PyTorch (CPU)
    distributed             data-parallel training under mpirun -n 2 (also in tests-numpy)
    bench                   the CPU benchmark suite against PyTorch (not in the default run)
"""

from __future__ import annotations

import shutil

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True
nox.options.sessions = [
    "lint",
    "tests-numpy",
    "tests-array_api_strict",
    "tests-cupy",
    "cudasim",
    "crosscheck",
]

CODE = ("gpunet", "kernels", "tests", "examples", "benchmarks", "noxfile.py")
CUDA_EXTRA = "cuda12"
# The CPU build of PyTorch, for cross-checks and benchmarks only; gpunet never needs it.
TORCH = "torch==2.13.0"


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check."""
    session.install("ruff")
    session.run("ruff", "check", *CODE)


def _suite(session: nox.Session, backend: str, extras: str) -> None:
    """Install gpunet with ``extras`` and run the whole suite with GPUNET_BACKEND=backend."""
    session.install("-e", f".[{extras}]")
    session.run("pytest", *session.posargs, env={"GPUNET_BACKEND": backend})


@nox.session(name="tests-numpy", tags=["tests"])
def tests_numpy(session: nox.Session) -> None:
    """The whole suite on NumPy, with the examples and the two-rank MPI tests.

    mpi4py and Open MPI are small wheels: this session also runs the two-rank tests
    under mpirun (the distributed session runs them alone).
    """
    _suite(session, "numpy", "test,distributed")


@nox.session(name="tests-array_api_strict", tags=["tests"])
def tests_array_api_strict(session: nox.Session) -> None:
    """The whole suite on array-api-strict: the code uses nothing beyond the standard."""
    _suite(session, "array_api_strict", "test")


@nox.session(name="tests-cupy", tags=["tests"])
def tests_cupy(session: nox.Session) -> None:
    """The whole suite on CuPy and the CUDA kernels; skips where no NVIDIA GPU is present."""
    if shutil.which("nvidia-smi") is None:
        session.skip(
            "no NVIDIA GPU here (nvidia-smi not found): the cupy backend needs a CUDA GPU; "
            f"on one, 'nox -s tests-cupy' installs gpunet[test,{CUDA_EXTRA}] and runs the suite"
        )
    _suite(session, "cupy", f"test,{CUDA_EXTRA}")


@nox.session
def cudasim(session: nox.Session) -> None:
    """The CUDA kernels against the reference ops, simulated on the CPU (tiny shapes)."""
    session.install("-e", ".[test]")
    session.run(
        "pytest",
        "-m",
        "cudasim",
        *session.posargs,
        env={"NUMBA_ENABLE_CUDASIM": "1", "GPUNET_BACKEND": "numpy"},
    )


@nox.session
def ptx(session: nox.Session) -> None:
    """Every CUDA kernel compiled to PTX for the types it is launched with, no GPU needed:
    float32 builds free of float64 instructions, index builds free of 64-bit division.
    Elsewhere tests/test_cuda_compile.py skips for want of NVIDIA's compiler (NVVM)."""
    session.install("-e", ".[test]", "numba-cuda[cu12]")
    session.run(
        "pytest", "tests/test_cuda_compile.py", *session.posargs, env={"GPUNET_BACKEND": "numpy"}
    )


@nox.session(venv_backend="virtualenv")
def crosscheck(session: nox.Session) -> None:
    """Forward and backward against PyTorch on the CPU (pip: it honours local wheel links)."""
    session.install("-e", ".[test]", TORCH)
    session.run("pytest", "-m", "crosscheck", *session.posargs, env={"GPUNET_BACKEND": "numpy"})


@nox.session
def distributed(session: nox.Session) -> None:
    """Data-parallel training under ``mpirun -n 2`` (Open MPI from PyPI; root allowed)."""
    session.install("-e", ".[test,distributed]")
    session.run(
        "pytest",
        "tests/test_distributed_mpi.py",
        *session.posargs,
        env={
            "GPUNET_BACKEND": "numpy",
            "OMPI_ALLOW_RUN_AS_ROOT": "1",
            "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
            "OMP_NUM_THREADS": "1",
        },
    )


@nox.session(venv_backend="virtualenv")
def bench(session: nox.Session) -> None:
    """The CPU benchmark suite: gpunet against PyTorch, interleaved rounds, medians."""
    session.install("-e", ".[test]", TORCH)
    session.run("python", "-m", "benchmarks", *session.posargs)
