"""Data-parallel training across processes (MPI) and GPUs (NCCL)."""

from gpunet.distributed.state import is_initialized

__all__ = ["is_initialized"]
