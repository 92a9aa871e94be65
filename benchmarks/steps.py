"""The training step every workload times, once for gpunet and once for PyTorch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def gpunet_sync(device: str) -> Callable[[], None]:
    """Wait for the GPU (CuPy's current stream) on ``device == "gpu"``; else nothing."""
    if device != "gpu":
        return lambda: None
    import cupy

    return cupy.cuda.get_current_stream().synchronize


def torch_sync(device: str) -> Callable[[], None]:
    """Wait for the GPU on ``device == "gpu"``; else nothing."""
    if device != "gpu":
        return lambda: None
    import torch

    return torch.cuda.synchronize


def gpunet_train_step(
    model: Any, loss_fn: Any, optimizer: Any, x: Any, y: Any, device: str
) -> Callable[[], None]:
    """One forward, backward and optimizer step of a gpunet model on a fixed batch."""
    sync = gpunet_sync(device)

    def step() -> None:
        loss_fn(model(x), y)
        optimizer.zero_grad()
        model.backward(loss_fn.backward())
        optimizer.step()
        sync()

    return step


def torch_train_step(
    model: Any, loss_fn: Any, optimizer: Any, x: Any, y: Any, device: str
) -> Callable[[], None]:
    """The same step in PyTorch (``model`` may be any callable of the parameters' module)."""
    sync = torch_sync(device)

    def step() -> None:
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()
        sync()

    return step
