"""W5: XOR training step, 4 samples, 2-8-1 tanh then sigmoid, BCE, SGD lr 0.5, full batch.

Almost all of such a step is framework overhead: it measures the cost of each call.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from benchmarks.steps import gpunet_train_step, torch_train_step

NAME = "W5"
DESCRIPTION = "XOR 2-8-1 tanh/sigmoid, BCE, SGD: train step (overhead)"
DEFAULT_BATCH = {"cpu": 4, "gpu": 4}


def flops(batch: int) -> int:
    return 3 * (2 * batch * 2 * 8 + 2 * batch * 8 * 1)


def build(framework: str, device: str, batch: int) -> Callable[[], None]:
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    y = np.array([[0], [1], [1], [0]], dtype=np.float32)
    if framework == "gpunet":
        import gpunet
        from gpunet.losses import BinaryCrossEntropy
        from gpunet.nn import Dense, Sequential, Sigmoid, Tanh
        from gpunet.optim import SGD

        gpunet.seed(0)
        model = Sequential(Dense(2, 8), Tanh(), Dense(8, 1), Sigmoid())
        model[0].input_grad = False  # as in PyTorch, where the input needs no gradient
        loss_fn, optimizer = BinaryCrossEntropy(), SGD(model.parameters(), lr=0.5)
        return gpunet_train_step(
            model, loss_fn, optimizer, gpunet.asarray(x), gpunet.asarray(y), device
        )
    import torch

    dev = "cuda" if device == "gpu" else "cpu"
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1), torch.nn.Sigmoid()
    ).to(dev)
    loss_fn, optimizer = torch.nn.BCELoss(), torch.optim.SGD(model.parameters(), lr=0.5)
    xb, yb = torch.from_numpy(x).to(dev), torch.from_numpy(y).to(dev)
    return torch_train_step(model, loss_fn, optimizer, xb, yb, device)
