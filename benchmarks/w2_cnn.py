"""W2: one training step of a small CNN on 1x28x28 images (MNIST-sized).

Conv2D 1->16 k5 pad 2, ReLU, MaxPool2D 2, Conv2D 16->32 k5 pad 2, ReLU, MaxPool2D 2,
Flatten, Dense 1568->128, ReLU, Dense 128->10, cross-entropy, Adam (lr 1e-3).
The first convolution computes no input gradient in either framework (its input needs
none). Data are random; one call runs forward, backward and the optimizer step.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from benchmarks.steps import gpunet_train_step, torch_train_step

NAME = "W2"
DESCRIPTION = "CNN training step (2 conv + 2 max-pool + 2 dense, Adam), input 1x28x28"
DEFAULT_BATCH = {"cpu": 64, "gpu": 256}

# (out, in*k*k, output pixels per sample) of each convolution's GEMM
_CONVS = ((16, 1 * 25, 28 * 28), (32, 16 * 25, 14 * 14))
_DENSES = ((1568, 128), (128, 10))


def flops(batch: int) -> int:
    """GEMM FLOPs of one step: forward, weight gradients and input gradients (2*m*n*k each).

    The first convolution has no input-gradient GEMM.
    """
    total = 0
    for index, (out_ch, k, pixels) in enumerate(_CONVS):
        gemm = 2 * out_ch * k * pixels * batch
        total += gemm * (2 if index == 0 else 3)
    for fan_in, fan_out in _DENSES:
        total += 3 * 2 * batch * fan_in * fan_out
    return total


def _data(batch: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, size=batch)
    return x, y


def build(framework: str, device: str, batch: int) -> Callable[[], None]:
    """A zero-argument function running one training step (synchronised on GPU)."""
    if framework == "gpunet":
        return _build_gpunet(device, batch)
    if framework == "torch":
        return _build_torch(device, batch)
    raise ValueError(f"W2: unknown framework {framework!r}; expected 'gpunet' or 'torch'")


def _build_gpunet(device: str, batch: int) -> Callable[[], None]:
    import gpunet
    from gpunet.losses import CrossEntropy
    from gpunet.nn import Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential
    from gpunet.optim import Adam

    gpunet.backend.set("cupy" if device == "gpu" else "numpy")
    gpunet.seed(0)
    first = Conv2D(1, 16, 5, padding=2)
    first.input_grad = False
    model = Sequential(
        first, ReLU(), MaxPool2D(2),
        Conv2D(16, 32, 5, padding=2), ReLU(), MaxPool2D(2),
        Flatten(), Dense(1568, 128), ReLU(), Dense(128, 10),
    )  # fmt: skip
    loss_fn = CrossEntropy()
    optimizer = Adam(model.parameters(), lr=1e-3)
    x_host, y_host = _data(batch)
    x, y = gpunet.asarray(x_host), gpunet.asarray(y_host)
    return gpunet_train_step(model, loss_fn, optimizer, x, y, device)


def _build_torch(device: str, batch: int) -> Callable[[], None]:
    import torch

    torch.manual_seed(0)
    dev = "cuda" if device == "gpu" else "cpu"
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(1, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(1568, 128), nn.ReLU(), nn.Linear(128, 10),
    ).to(dev)  # fmt: skip
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    x_host, y_host = _data(batch)
    x, y = torch.from_numpy(x_host).to(dev), torch.from_numpy(y_host).to(dev)
    return torch_train_step(model, loss_fn, optimizer, x, y, device)
