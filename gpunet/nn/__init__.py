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
from gpunet.nn.batchnorm import BatchNorm1D, BatchNorm2D
from gpunet.nn.bidirectional import Bidirectional
from gpunet.nn.conv import Conv2D
from gpunet.nn.dense import Dense
from gpunet.nn.dropout import Dropout
from gpunet.nn.layer import Layer, Sequential
from gpunet.nn.parameter import Parameter
from gpunet.nn.pool import AvgPool2D, GlobalAvgPool2D, MaxPool2D
from gpunet.nn.recurrent import GRU, LSTM, RNN
from gpunet.nn.reshape import Flatten

__all__ = [
    "Activation",
    "AvgPool2D",
    "BatchNorm1D",
    "BatchNorm2D",
    "Bidirectional",
    "Conv2D",
    "Dense",
    "Dropout",
    "Flatten",
    "GRU",
    "GlobalAvgPool2D",
    "LSTM",
    "Layer",
    "LeakyReLU",
    "MaxPool2D",
    "Parameter",
    "RNN",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "Softplus",
    "Softsign",
    "Tanh",
]
