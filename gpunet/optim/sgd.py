"""Stochastic gradient descent, with momentum and Nesterov momentum."""

from __future__ import annotations

from typing import Any

from gpunet import checks
from gpunet.backend import namespace
from gpunet.nn.parameter import Parameter
from gpunet.optim.optimizer import Optimizer


def sgd_update(
    param: Any,
    grad: Any,
    momentum_buffer: Any,
    *,
    lr: float,
    momentum: float = 0.0,
    dampening: float = 0.0,
    weight_decay: float = 0.0,
    nesterov: bool = False,
    first: bool = False,
) -> tuple[Any, Any]:
    """One SGD step (PyTorch's rule). Returns ``(new_param, new_momentum_buffer)``.

    .. math::
        g &\\leftarrow g + \\lambda\\theta \\\\
        b &\\leftarrow g \\text{ on the first step, else } \\mu b + (1 - \\tau) g \\\\
        g &\\leftarrow g + \\mu b \\text{ (Nesterov) or } b \\text{ (momentum)} \\\\
        \\theta &\\leftarrow \\theta - \\eta g

    with learning rate eta, momentum mu, dampening tau and weight decay lambda. Without
    momentum the buffer is returned unchanged.
    """
    if weight_decay != 0:
        grad = grad + weight_decay * param
    if momentum != 0:
        if first:
            momentum_buffer = grad
        else:
            momentum_buffer = momentum * momentum_buffer + (1 - dampening) * grad
        grad = grad + momentum * momentum_buffer if nesterov else momentum_buffer
    return param - lr * grad, momentum_buffer


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum.

    Args:
        params: the parameters to optimise (``model.parameters()``).
        lr: learning rate (>= 0).
        momentum: momentum factor mu (default 0: plain SGD).
        dampening: dampening tau of the momentum (default 0).
        nesterov: Nesterov momentum (default False; needs momentum > 0, dampening 0).
        weight_decay: L2 penalty lambda added to the gradient as ``lambda * theta``
            (default 0).

    Update (see ``sgd_update``): ``b = mu b + (1 - tau) g`` (``b = g`` on the first step),
    then ``theta -= lr * (g + mu b)`` with Nesterov, ``theta -= lr * b`` without.
    """

    hyperparameters = ("lr", "momentum", "dampening", "nesterov", "weight_decay")
    kernel_op = "sgd"

    def __init__(
        self,
        params: Any,
        lr: float,
        momentum: float = 0.0,
        dampening: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ):
        super().__init__(
            params,
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            nesterov=nesterov,
            weight_decay=weight_decay,
        )

    @classmethod
    def checked_hyperparameters(cls, values: dict[str, Any]) -> dict[str, Any]:
        name = cls.__name__
        checked = {
            **super().checked_hyperparameters(values),
            "momentum": checks.number(values["momentum"], name, "momentum", 0),
            "dampening": checks.number(values["dampening"], name, "dampening", 0, 1),
            "nesterov": checks.flag(values["nesterov"], name, "nesterov"),
            "weight_decay": checks.number(values["weight_decay"], name, "weight_decay", 0),
        }
        if checked["nesterov"] and (checked["momentum"] <= 0 or checked["dampening"] != 0):
            raise ValueError(
                f"{name}: nesterov=True needs momentum > 0 and dampening 0, got momentum "
                f"{checked['momentum']!r} and dampening {checked['dampening']!r}"
            )
        return checked

    def init_state(self, param: Parameter) -> dict[str, Any]:
        if self.momentum == 0:
            return {}
        # Written over on the first step (b = g), as PyTorch creates it then.
        return {"momentum_buffer": namespace(param.data).zeros_like(param.data)}

    def update(self, param: Parameter, state: dict[str, Any]) -> None:
        buffer = state.get("momentum_buffer")
        hyper = {
            "lr": self.lr,
            "momentum": self.momentum,
            "dampening": self.dampening,
            "weight_decay": self.weight_decay,
            "nesterov": self.nesterov,
            "first": state["step"] == 1,
        }
        fused = self.fused_kernel(param, *(() if buffer is None else (buffer,)))
        if fused is not None:
            # Without momentum the kernel never reads or writes the buffer slot.
            fused(param.data, param.grad, param.grad if buffer is None else buffer, **hyper)
            return
        param.data, new_buffer = sgd_update(param.data, param.grad, buffer, **hyper)
        if buffer is not None:
            state["momentum_buffer"] = new_buffer
