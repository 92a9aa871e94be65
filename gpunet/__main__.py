"""``python -m gpunet info``: what gpunet runs on here, and why."""

from __future__ import annotations

import argparse
import os
import sys


def info() -> str:
    """A report of the backend, device, kernels and CuPy status."""
    import numba

    import gpunet
    from gpunet import backend

    lines = [f"gpunet {gpunet.__version__} (Python {sys.version.split()[0]})"]
    try:
        name = backend.name()
    except Exception as err:  # report, do not crash: this is the diagnostic tool
        lines.append(f"backend:        unusable: {err}")
        name = None
    if name is not None:
        ns = backend.xp()
        lines.append(f"backend:        {name} {_library_version(name)}")
        lines.append(f"device:         {backend.device_description()}")
        lines.append(f"namespace:      {ns.__name__}")
        lines.append(f"kernels:        {_kernel_status(name)}")
    lines.append(f"numba:          {numba.__version__}")
    lines.append(f"cpu threads:    {_threads_status()}")
    lines.append(f"blas:           {_blas_status()}")
    lines.append(
        "memory:         the array library's allocator, as configured (gpunet sets nothing); "
        "layers reuse their kernels' scratch buffers while shapes repeat"
    )
    lines.append(f"numba cache:    {_numba_cache_status()}")
    lines.append(f"cupy:           {backend.cupy_status()}")
    variables = {k: v for k, v in os.environ.items() if k.startswith("GPUNET_")}
    lines.append(f"environment:    {variables or 'no GPUNET_* variables set'}")
    return "\n".join(lines)


def _threads_status() -> str:
    from gpunet.kernels import _parallel

    return _parallel.describe()


def _blas_status() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError as err:  # report, do not crash: this is the diagnostic tool
        return f"unknown ({err!r})"
    found = [
        f"{lib['internal_api']} {lib.get('version')} ({lib['filepath'].rsplit('/', 1)[-1]}), "
        f"{lib['num_threads']} threads"
        for lib in threadpool_info()
        if lib["user_api"] == "blas"
    ]
    return "; ".join(found) or "none found by threadpoolctl"


def _library_version(name: str) -> str:
    module = __import__(name)
    return getattr(module, "__version__", "")


def _kernel_status(name: str) -> str:
    from gpunet import backend

    if not backend.kernels_enabled():
        return "off (GPUNET_KERNELS=0): reference array-API code is used"
    if name == "array_api_strict":
        return "off: array_api_strict runs the reference code only"
    from gpunet import kernels

    if name == "cupy":
        try:
            from numba import cuda

            usable = cuda.is_available()
        except Exception as err:  # numba-cuda missing, or built for another NumPy
            return f"NOT usable: numba.cuda does not import ({err!r}); set GPUNET_KERNELS=0"
        if not usable:
            return "NOT usable: numba.cuda sees no GPU; set GPUNET_KERNELS=0"
    target = "CUDA (numba.cuda)" if name == "cupy" else "CPU (numba njit)"
    return f"on, {target}: {', '.join(sorted(kernels.available()))}"


def _numba_cache_status() -> str:
    """Where Numba keeps (or cannot keep) the compiled kernels of every family."""
    import importlib

    from gpunet import kernels
    from gpunet.kernels import _jit

    for module in sorted(set(kernels.available().values())):
        try:
            importlib.import_module(f"gpunet.kernels.{module}")
        except Exception as err:  # report, do not crash: this is the diagnostic tool
            return f"unknown: kernels.{module} does not import ({err!r})"
    return _jit.cache_report()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gpunet")
    parser.add_argument("command", choices=["info"], help="info: backend, device, kernels")
    parser.parse_args(argv)
    print(info())
    return 0


if __name__ == "__main__":
    sys.exit(main())
