"""Matrix products: ``matmul(a, b)``, the GEMM of Dense and recurrent layers.

The reference is the array library's ``a @ b``. On NumPy the kernel op ``matmul`` splits
the product over gpunet's threads (``gpunet.kernels.linear``), so that gpunet's threads,
not the BLAS's, share the cores.
"""

from __future__ import annotations

from typing import Any

from gpunet import backend, kernels
from gpunet.backend import namespace

kernels.register("matmul", "linear")


def matmul(a: Any, b: Any) -> Any:
    """``a @ b`` for 2-D arrays ``(m, k)`` and ``(k, n)``."""
    fast = backend.kernel("matmul", namespace(a, b))
    if fast is None:
        return a @ b
    return fast(a, b)
