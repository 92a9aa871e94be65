"""Optimizers, learning-rate schedules and gradient clipping; rules follow PyTorch's."""

from gpunet.optim import lr_scheduler
from gpunet.optim.adagrad import Adagrad
from gpunet.optim.adam import Adam, AdamW
from gpunet.optim.clip import clip_grad_norm, clip_grad_value
from gpunet.optim.optimizer import Optimizer
from gpunet.optim.rmsprop import RMSprop
from gpunet.optim.sgd import SGD

__all__ = [
    "SGD",
    "Adagrad",
    "Adam",
    "AdamW",
    "Optimizer",
    "RMSprop",
    "clip_grad_norm",
    "clip_grad_value",
    "lr_scheduler",
]
