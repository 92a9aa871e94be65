"""Stochastic gradient descent."""

from __future__ import annotations

from typing import Any

from gpunet.nn.parameter import Parameter
from gpunet.optim.optimizer import Optimizer


def sgd_update(param: Any, grad: Any, lr: float) -> Any:
    """theta <- theta - lr * g."""
    return param - lr * grad


class SGD(Optimizer):
    """Plain gradient descent: theta <- theta - lr * g.

    Args:
        params: the parameters to optimise (``model.parameters()``).
        lr: learning rate (>= 0).
    """

    def __init__(self, params: Any, lr: float):
        super().__init__(params, lr)

    def update(self, param: Parameter, state: dict[str, Any]) -> None:
        param.data = sgd_update(param.data, param.grad, self.lr)
