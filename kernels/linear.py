"""Matrix products on gpunet's CPU threads.

``matmul_cpu(a, b)`` is ``a @ b`` for 2-D NumPy arrays with the rows (or columns) of the
product split over gpunet's threads, each part a single-threaded BLAS call
(``_parallel.matmul``). Every large GEMM gpunet makes on the CPU goes through here or
through a kernel family's own parts, so the BLAS's own pool never competes with
gpunet's. There is no CUDA version: cuBLAS is the GPU's.
"""

from __future__ import annotations

from ._parallel import matmul as matmul_cpu

__all__ = ["matmul_cpu"]
