"""The training step shared by W3 (LSTM), W4 (tanh RNN) and W7 (GRU): a recurrent layer
over a batch of sequences, its last hidden state into Dense(hidden, 10), CrossEntropy, Adam.
The recurrent layer computes no input gradient in either framework (its input needs none).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.steps import gpunet_train_step, torch_train_step

STEPS, FEATURES, HIDDEN, CLASSES = 50, 32, 128, 10
GATES = {"lstm": 4, "rnn": 1, "gru": 3}


def recurrent_flops(kind: str, batch: int) -> int:
    """2*m*n*k per GEMM; each forward GEMM has two backward GEMMs of the same size
    (input gradient and weight gradient), except the input projection, which has no
    input gradient."""
    width = GATES[kind] * HIDDEN
    projection = 2 * batch * STEPS * FEATURES * width  # all steps in one GEMM
    recurrent = 2 * batch * STEPS * HIDDEN * width  # one GEMM per step
    head = 2 * batch * HIDDEN * CLASSES
    return 3 * (projection + recurrent + head) - projection


def _data(batch: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, STEPS, FEATURES)).astype(np.float32)
    return x, rng.integers(0, CLASSES, batch)


def build_recurrent(kind: str, framework: str, device: str, batch: int) -> Callable[[], None]:
    """One training step of ``kind`` ("lstm", "rnn" or "gru") in gpunet or PyTorch."""
    x, y = _data(batch)
    if framework == "gpunet":
        return _gpunet_step(kind, device, x, y)
    return _torch_step(kind, device, x, y)


def _gpunet_step(kind: str, device: str, x: np.ndarray, y: np.ndarray) -> Callable[[], None]:
    import gpunet
    from gpunet.losses import CrossEntropy
    from gpunet.nn import GRU, LSTM, RNN, Dense, Sequential
    from gpunet.optim import Adam

    gpunet.seed(0)
    layer = {"lstm": LSTM, "rnn": RNN, "gru": GRU}[kind](FEATURES, HIDDEN)
    layer.input_grad = False
    model = Sequential(layer, Dense(HIDDEN, CLASSES))
    loss_fn, optimizer = CrossEntropy(), Adam(model.parameters(), lr=1e-3)
    return gpunet_train_step(
        model, loss_fn, optimizer, gpunet.asarray(x), gpunet.asarray(y), device
    )


def _torch_step(kind: str, device: str, x: np.ndarray, y: np.ndarray) -> Callable[[], None]:
    import torch

    dev = "cuda" if device == "gpu" else "cpu"
    torch.manual_seed(0)
    cls = {"lstm": torch.nn.LSTM, "rnn": torch.nn.RNN, "gru": torch.nn.GRU}[kind]
    layer = cls(FEATURES, HIDDEN, batch_first=True).to(dev)
    head = torch.nn.Linear(HIDDEN, CLASSES).to(dev)
    params = list(layer.parameters()) + list(head.parameters())
    loss_fn, optimizer = torch.nn.CrossEntropyLoss(), torch.optim.Adam(params, lr=1e-3)
    xb, yb = torch.from_numpy(x).to(dev), torch.from_numpy(y).to(dev)

    def model(sequences: Any) -> Any:
        out, _ = layer(sequences)
        return head(out[:, -1])

    return torch_train_step(model, loss_fn, optimizer, xb, yb, device)
