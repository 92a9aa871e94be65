"""Optimizers; their update rules follow PyTorch's definitions."""

from gpunet.optim.optimizer import Optimizer
from gpunet.optim.sgd import SGD

__all__ = ["SGD", "Optimizer"]
