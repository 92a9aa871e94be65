"""W1: MLP training step, 784-256-128-10 with ReLU, CrossEntropy, batch 128, Adam.

The first layer computes no input gradient in either framework (its input needs none).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from benchmarks.steps import gpunet_train_step, torch_train_step

NAME = "W1"
DESCRIPTION = "MLP 784-256-128-10 ReLU, CrossEntropy, Adam: train step"
DEFAULT_BATCH = {"cpu": 128, "gpu": 128}
SIZES = (784, 256, 128, 10)


def flops(batch: int) -> int:
    """Forward GEMMs 2*b*i*o each; backward twice that (input and weight gradients),
    except the first layer's, which has no input gradient."""
    gemms = [2 * batch * i * o for i, o in zip(SIZES[:-1], SIZES[1:], strict=True)]
    return 3 * sum(gemms) - gemms[0]


def _data(batch: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((batch, SIZES[0])).astype(np.float32), rng.integers(0, 10, batch)


def build(framework: str, device: str, batch: int) -> Callable[[], None]:
    x, y = _data(batch)
    if framework == "gpunet":
        import gpunet
        from gpunet.losses import CrossEntropy
        from gpunet.nn import Dense, ReLU, Sequential
        from gpunet.optim import Adam

        gpunet.seed(0)
        model = Sequential(Dense(784, 256), ReLU(), Dense(256, 128), ReLU(), Dense(128, 10))
        model[0].input_grad = False
        loss_fn, optimizer = CrossEntropy(), Adam(model.parameters(), lr=1e-3)
        return gpunet_train_step(
            model, loss_fn, optimizer, gpunet.asarray(x), gpunet.asarray(y), device
        )
    import torch

    dev = "cuda" if device == "gpu" else "cpu"
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(784, 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, 128),
        torch.nn.ReLU(),
        torch.nn.Linear(128, 10),
    ).to(dev)
    loss_fn, optimizer = torch.nn.CrossEntropyLoss(), torch.optim.Adam(model.parameters(), lr=1e-3)
    xb, yb = torch.from_numpy(x).to(dev), torch.from_numpy(y).to(dev)
    return torch_train_step(model, loss_fn, optimizer, xb, yb, device)
