"""W6: forward pass of W2's CNN in eval mode, batch 256 on CPU (inference throughput).

Conv2D 1->16 k5 pad 2, ReLU, MaxPool2D 2, Conv2D 16->32 k5 pad 2, ReLU, MaxPool2D 2,
Flatten, Dense 1568->128, ReLU, Dense 128->10, on random 1x28x28 images. PyTorch runs
under ``torch.no_grad()``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from benchmarks.steps import gpunet_sync, torch_sync
from benchmarks.w2_cnn import _CONVS, _DENSES

NAME = "W6"
DESCRIPTION = "CNN forward pass (W2's model, eval mode), input 1x28x28"
DEFAULT_BATCH = {"cpu": 256, "gpu": 256}


def flops(batch: int) -> int:
    """GEMM FLOPs of one forward pass (2*m*n*k per GEMM)."""
    convs = sum(2 * out_ch * k * pixels * batch for out_ch, k, pixels in _CONVS)
    return convs + sum(2 * batch * fan_in * fan_out for fan_in, fan_out in _DENSES)


def build(framework: str, device: str, batch: int) -> Callable[[], None]:
    """A zero-argument function running one forward batch (synchronised on GPU)."""
    x_host = np.random.default_rng(0).standard_normal((batch, 1, 28, 28)).astype(np.float32)
    if framework == "gpunet":
        import gpunet
        from gpunet.nn import Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential

        gpunet.backend.set("cupy" if device == "gpu" else "numpy")
        gpunet.seed(0)
        model = Sequential(
            Conv2D(1, 16, 5, padding=2), ReLU(), MaxPool2D(2),
            Conv2D(16, 32, 5, padding=2), ReLU(), MaxPool2D(2),
            Flatten(), Dense(1568, 128), ReLU(), Dense(128, 10),
        ).eval()  # fmt: skip
        x = gpunet.asarray(x_host)
        sync = gpunet_sync(device)

        def forward() -> None:
            model(x)
            sync()

        return forward
    if framework == "torch":
        import torch

        torch.manual_seed(0)
        dev = "cuda" if device == "gpu" else "cpu"
        nn = torch.nn
        model = nn.Sequential(
            nn.Conv2d(1, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(1568, 128), nn.ReLU(), nn.Linear(128, 10),
        ).to(dev).eval()  # fmt: skip
        x = torch.from_numpy(x_host).to(dev)
        sync = torch_sync(device)

        def forward() -> None:
            with torch.no_grad():
                model(x)
            sync()

        return forward
    raise ValueError(f"W6: unknown framework {framework!r}; expected 'gpunet' or 'torch'")
