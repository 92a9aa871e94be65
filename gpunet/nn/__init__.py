"""Layers and networks."""

from gpunet.nn.activations import (
    Activation,
    LeakyReLU,
    ReLU,
    Sigmoid,
    Softmax,
    Softplus,
    Softsign,
    Tanh,
)
from gpunet.nn.dense import Dense
from gpunet.nn.layer import Layer, Sequential
from gpunet.nn.parameter import Parameter

__all__ = [
    "Activation",
    "Dense",
    "Layer",
    "LeakyReLU",
    "Parameter",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "Softplus",
    "Softsign",
    "Tanh",
]
