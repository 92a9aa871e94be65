"""RMSprop: gradients divided by a running root mean square."""

from __future__ import annotations

from typing import Any

from gpunet import checks
from gpunet.backend import namespace
from gpunet.nn.parameter import Parameter
from gpunet.optim.optimizer import Optimizer


def rmsprop_update(
    param: Any,
    grad: Any,
    square_avg: Any,
    grad_avg: Any,
    momentum_buffer: Any,
    *,
    lr: float,
    alpha: float = 0.99,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    momentum: float = 0.0,
    centered: bool = False,
) -> tuple[Any, Any, Any, Any]:
    """One RMSprop step (PyTorch's rule).

    Returns ``(new_param, new_square_avg, new_grad_avg, new_momentum_buffer)``; the
    buffers a setting does not use (``grad_avg`` unless centered, ``momentum_buffer``
    without momentum) are returned unchanged.

    .. math::
        g &\\leftarrow g + \\lambda\\theta \\\\
        v &\\leftarrow \\alpha v + (1 - \\alpha) g^2 \\\\
        \\bar g &\\leftarrow \\alpha \\bar g + (1 - \\alpha) g \\quad
            d = \\sqrt{v - \\bar g^2} + \\epsilon \\text{ (centered), else }
            d = \\sqrt{v} + \\epsilon \\\\
        b &\\leftarrow \\mu b + g / d, \\quad \\theta \\leftarrow \\theta - \\eta b
            \\text{ (momentum), else } \\theta \\leftarrow \\theta - \\eta g / d
    """
    xp = namespace(param, grad)
    if weight_decay != 0:
        grad = grad + weight_decay * param
    square_avg = alpha * square_avg + (1 - alpha) * (grad * grad)
    if centered:
        grad_avg = grad_avg + (1 - alpha) * (grad - grad_avg)
        avg = xp.sqrt(square_avg - grad_avg * grad_avg) + eps
    else:
        avg = xp.sqrt(square_avg) + eps
    if momentum > 0:
        momentum_buffer = momentum * momentum_buffer + grad / avg
        param = param - lr * momentum_buffer
    else:
        param = param - lr * (grad / avg)
    return param, square_avg, grad_avg, momentum_buffer


class RMSprop(Optimizer):
    """RMSprop (Hinton, 2012): divide the gradient by a running RMS of recent gradients.

    Args:
        params: the parameters to optimise (``model.parameters()``).
        lr: learning rate (default 0.01).
        alpha: smoothing constant of the running averages (default 0.99, in [0, 1)).
        eps: added to the denominator for stability (default 1e-8, > 0).
        weight_decay: L2 penalty lambda added to the gradient (default 0).
        momentum: momentum factor (default 0).
        centered: divide by the estimated standard deviation of the gradient instead of
            its RMS (default False).

    Update: see ``rmsprop_update``.
    """

    hyperparameters = ("lr", "alpha", "eps", "weight_decay", "momentum", "centered")
    kernel_op = "rmsprop"

    def __init__(
        self,
        params: Any,
        lr: float = 0.01,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
    ):
        super().__init__(
            params,
            lr=lr,
            alpha=alpha,
            eps=eps,
            weight_decay=weight_decay,
            momentum=momentum,
            centered=centered,
        )

    @classmethod
    def checked_hyperparameters(cls, values: dict[str, Any]) -> dict[str, Any]:
        name = cls.__name__
        return {
            **super().checked_hyperparameters(values),
            "alpha": checks.number(values["alpha"], name, "alpha", 0, 1, high_open=True),
            "eps": checks.number(values["eps"], name, "eps", 0, low_open=True),
            "weight_decay": checks.number(values["weight_decay"], name, "weight_decay", 0),
            "momentum": checks.number(values["momentum"], name, "momentum", 0),
            "centered": checks.flag(values["centered"], name, "centered"),
        }

    def init_state(self, param: Parameter) -> dict[str, Any]:
        xp = namespace(param.data)
        state = {"square_avg": xp.zeros_like(param.data)}
        if self.centered:
            state["grad_avg"] = xp.zeros_like(param.data)
        if self.momentum > 0:
            state["momentum_buffer"] = xp.zeros_like(param.data)
        return state

    def update(self, param: Parameter, state: dict[str, Any]) -> None:
        square_avg = state["square_avg"]
        # Settings that leave a buffer unused pass square_avg in its slot; it is never
        # read or written there.
        grad_avg = state.get("grad_avg", square_avg)
        buffer = state.get("momentum_buffer", square_avg)
        hyper = {
            "lr": self.lr,
            "alpha": self.alpha,
            "eps": self.eps,
            "weight_decay": self.weight_decay,
            "momentum": self.momentum,
            "centered": self.centered,
        }
        fused = self.fused_kernel(param, square_avg, grad_avg, buffer)
        if fused is not None:
            fused(param.data, param.grad, square_avg, grad_avg, buffer, **hyper)
            return
        param.data, square_avg, grad_avg, buffer = rmsprop_update(
            param.data, param.grad, square_avg, grad_avg, buffer, **hyper
        )
        state["square_avg"] = square_avg
        if "grad_avg" in state:
            state["grad_avg"] = grad_avg
        if "momentum_buffer" in state:
            state["momentum_buffer"] = buffer
