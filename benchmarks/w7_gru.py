"""W7: GRU training step: batch 64, T = 50, input 32, hidden 128, last hidden state ->
Dense(128, 10), CrossEntropy, Adam (W3 with a GRU)."""

from __future__ import annotations

from collections.abc import Callable

from benchmarks.recurrent_step import build_recurrent, recurrent_flops

NAME = "W7"
DESCRIPTION = "GRU 32->128 over T=50, last state -> Dense 128->10, CrossEntropy, Adam: train step"
DEFAULT_BATCH = {"cpu": 64, "gpu": 256}


def flops(batch: int) -> int:
    """GEMM FLOPs of one step, forward and backward (see ``recurrent_flops``)."""
    return recurrent_flops("gru", batch)


def build(framework: str, device: str, batch: int) -> Callable[[], None]:
    return build_recurrent("gru", framework, device, batch)
