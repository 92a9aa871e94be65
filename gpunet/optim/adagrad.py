"""Adagrad: per-coordinate learning rates from the sum of squared gradients."""

from __future__ import annotations

from typing import Any

from gpunet import checks
from gpunet.backend import namespace
from gpunet.nn.parameter import Parameter
from gpunet.optim.optimizer import Optimizer


def adagrad_update(
    param: Any,
    grad: Any,
    state_sum: Any,
    *,
    lr: float,
    step: int,
    lr_decay: float = 0.0,
    weight_decay: float = 0.0,
    eps: float = 1e-10,
) -> tuple[Any, Any]:
    """One Adagrad step (PyTorch's rule). Returns ``(new_param, new_state_sum)``.

    .. math::
        g &\\leftarrow g + \\lambda\\theta \\\\
        \\tilde\\eta &= \\eta / (1 + (t - 1)\\,\\text{lr\\_decay}) \\\\
        s &\\leftarrow s + g^2 \\\\
        \\theta &\\leftarrow \\theta - \\tilde\\eta\\, g / (\\sqrt{s} + \\epsilon)

    where t is the parameter's step number, counted from 1.
    """
    xp = namespace(param, grad)
    if weight_decay != 0:
        grad = grad + weight_decay * param
    clr = lr / (1 + (step - 1) * lr_decay)
    state_sum = state_sum + grad * grad
    return param - clr * (grad / (xp.sqrt(state_sum) + eps)), state_sum


class Adagrad(Optimizer):
    """Adagrad (Duchi et al., 2011): each coordinate's step shrinks with its gradient history.

    Args:
        params: the parameters to optimise (``model.parameters()``).
        lr: learning rate (default 0.01).
        lr_decay: the learning rate at step t is ``lr / (1 + (t - 1) * lr_decay)``
            (default 0).
        weight_decay: L2 penalty lambda added to the gradient (default 0).
        initial_accumulator_value: starting value of the sum of squares (default 0).
        eps: added to the root of the sum for stability (default 1e-10, > 0).

    Update: see ``adagrad_update``.
    """

    hyperparameters = ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps")
    kernel_op = "adagrad"

    def __init__(
        self,
        params: Any,
        lr: float = 0.01,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
    ):
        super().__init__(
            params,
            lr=lr,
            lr_decay=lr_decay,
            weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value,
            eps=eps,
        )

    @classmethod
    def checked_hyperparameters(cls, values: dict[str, Any]) -> dict[str, Any]:
        name = cls.__name__
        return {
            **super().checked_hyperparameters(values),
            "lr_decay": checks.number(values["lr_decay"], name, "lr_decay", 0),
            "weight_decay": checks.number(values["weight_decay"], name, "weight_decay", 0),
            "initial_accumulator_value": checks.number(
                values["initial_accumulator_value"], name, "initial_accumulator_value", 0
            ),
            "eps": checks.number(values["eps"], name, "eps", 0, low_open=True),
        }

    def init_state(self, param: Parameter) -> dict[str, Any]:
        xp = namespace(param.data)
        return {
            "sum": xp.full(param.data.shape, self.initial_accumulator_value, dtype=param.data.dtype)
        }

    def update(self, param: Parameter, state: dict[str, Any]) -> None:
        hyper = {
            "lr": self.lr,
            "step": state["step"],
            "lr_decay": self.lr_decay,
            "weight_decay": self.weight_decay,
            "eps": self.eps,
        }
        fused = self.fused_kernel(param, state["sum"])
        if fused is not None:
            fused(param.data, param.grad, state["sum"], **hyper)
            return
        param.data, state["sum"] = adagrad_update(param.data, param.grad, state["sum"], **hyper)
