"""Adam and AdamW: adaptive moment estimation, with coupled or decoupled weight decay."""

from __future__ import annotations

import math
from typing import Any

from gpunet import checks
from gpunet.backend import namespace
from gpunet.nn.parameter import Parameter
from gpunet.optim.optimizer import Optimizer


def adam_update(
    param: Any,
    grad: Any,
    exp_avg: Any,
    exp_avg_sq: Any,
    max_exp_avg_sq: Any,
    *,
    lr: float,
    step: int,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    amsgrad: bool = False,
    decoupled: bool = False,
) -> tuple[Any, Any, Any, Any]:
    """One Adam (or, with ``decoupled``, AdamW) step, PyTorch's rule.

    Returns ``(new_param, new_exp_avg, new_exp_avg_sq, new_max_exp_avg_sq)``;
    ``max_exp_avg_sq`` is returned unchanged unless ``amsgrad``.

    .. math::
        \\theta &\\leftarrow \\theta (1 - \\eta\\lambda) \\text{ (AdamW), or }
            g \\leftarrow g + \\lambda\\theta \\text{ (Adam)} \\\\
        m &\\leftarrow \\beta_1 m + (1 - \\beta_1) g, \\quad
        v \\leftarrow \\beta_2 v + (1 - \\beta_2) g^2 \\\\
        \\hat v &= \\max(\\hat v, v) \\text{ (AMSGrad), else } \\hat v = v \\\\
        \\theta &\\leftarrow \\theta - \\frac{\\eta}{1 - \\beta_1^t}
            \\frac{m}{\\sqrt{\\hat v} / \\sqrt{1 - \\beta_2^t} + \\epsilon}

    where t is the parameter's step number, counted from 1.
    """
    xp = namespace(param, grad)
    if decoupled:
        param = param * (1 - lr * weight_decay)
    elif weight_decay != 0:
        grad = grad + weight_decay * param
    exp_avg = exp_avg + (1 - beta1) * (grad - exp_avg)
    exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * (grad * grad)
    step_size = lr / (1 - beta1**step)
    bias_correction2_sqrt = math.sqrt(1 - beta2**step)
    if amsgrad:
        max_exp_avg_sq = xp.maximum(max_exp_avg_sq, exp_avg_sq)
        denom = xp.sqrt(max_exp_avg_sq) / bias_correction2_sqrt + eps
    else:
        denom = xp.sqrt(exp_avg_sq) / bias_correction2_sqrt + eps
    return param - step_size * (exp_avg / denom), exp_avg, exp_avg_sq, max_exp_avg_sq


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015): momentum on the gradient and on its square, bias-corrected.

    Args:
        params: the parameters to optimise (``model.parameters()``).
        lr: learning rate (default 1e-3).
        betas: decay rates ``(beta1, beta2)`` of the two moments (default (0.9, 0.999),
            each in [0, 1)).
        eps: added to the denominator for stability (default 1e-8, > 0).
        weight_decay: L2 penalty lambda added to the gradient (default 0).
        amsgrad: use the running maximum of the second moment (default False).

    Update: see ``adam_update``.
    """

    hyperparameters = ("lr", "betas", "eps", "weight_decay", "amsgrad")
    kernel_op = "adam"
    decoupled = False

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
    ):
        super().__init__(
            params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad
        )

    @classmethod
    def checked_hyperparameters(cls, values: dict[str, Any]) -> dict[str, Any]:
        name, betas = cls.__name__, values["betas"]
        if not isinstance(betas, tuple | list) or len(betas) != 2:
            raise ValueError(f"{name}: betas must be a pair (beta1, beta2), got {betas!r}")
        return {
            **super().checked_hyperparameters(values),
            "betas": tuple(
                checks.number(beta, name, f"betas[{i}]", 0, 1, high_open=True)
                for i, beta in enumerate(betas)
            ),
            "eps": checks.number(values["eps"], name, "eps", 0, low_open=True),
            "weight_decay": checks.number(values["weight_decay"], name, "weight_decay", 0),
            "amsgrad": checks.flag(values["amsgrad"], name, "amsgrad"),
        }

    def init_state(self, param: Parameter) -> dict[str, Any]:
        xp = namespace(param.data)
        state = {"exp_avg": xp.zeros_like(param.data), "exp_avg_sq": xp.zeros_like(param.data)}
        if self.amsgrad:
            state["max_exp_avg_sq"] = xp.zeros_like(param.data)
        return state

    def update(self, param: Parameter, state: dict[str, Any]) -> None:
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        # Without AMSGrad the kernel neither reads nor writes the maximum's slot.
        max_exp_avg_sq = state.get("max_exp_avg_sq", exp_avg_sq)
        hyper = {
            "lr": self.lr,
            "step": state["step"],
            "beta1": self.betas[0],
            "beta2": self.betas[1],
            "eps": self.eps,
            "weight_decay": self.weight_decay,
            "amsgrad": self.amsgrad,
            "decoupled": self.decoupled,
        }
        fused = self.fused_kernel(param, exp_avg, exp_avg_sq, max_exp_avg_sq)
        if fused is not None:
            fused(param.data, param.grad, exp_avg, exp_avg_sq, max_exp_avg_sq, **hyper)
            return
        param.data, state["exp_avg"], state["exp_avg_sq"], max_exp_avg_sq = adam_update(
            param.data, param.grad, exp_avg, exp_avg_sq, max_exp_avg_sq, **hyper
        )
        if self.amsgrad:
            state["max_exp_avg_sq"] = max_exp_avg_sq


class AdamW(Adam):
    """AdamW (Loshchilov & Hutter, 2019): Adam with decoupled weight decay.

    The weights shrink by ``lr * weight_decay`` each step, apart from the gradient, so the
    decay is not rescaled by the adaptive denominator as Adam's L2 term is.

    Args:
        params: the parameters to optimise (``model.parameters()``).
        lr: learning rate (default 1e-3).
        betas: decay rates of the two moments (default (0.9, 0.999)).
        eps: added to the denominator for stability (default 1e-8).
        weight_decay: decoupled decay factor lambda (default 1e-2).
        amsgrad: use the running maximum of the second moment (default False).

    Update: see ``adam_update`` with ``decoupled=True``.
    """

    decoupled = True

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
    ):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)
