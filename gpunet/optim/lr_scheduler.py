"""Learning-rate schedules with PyTorch's semantics: they change ``optimizer.lr``.

Call ``scheduler.step()`` once per epoch, after the epoch's optimizer steps
(``ReduceLROnPlateau.step(metric)`` with the monitored value). The formulas are
PyTorch's recursive ones, so the learning rates agree with ``torch.optim.lr_scheduler``
to the last bits, even when something else changes ``optimizer.lr`` in between.
"""

from __future__ import annotations

import math
from typing import Any

from gpunet import checks
from gpunet.optim.optimizer import Optimizer


class LRScheduler:
    """Base class: ``step()`` advances one epoch and sets ``optimizer.lr = get_lr()``.

    Attributes:
        optimizer: the optimizer whose ``lr`` is scheduled.
        base_lr: ``optimizer.lr`` when the scheduler was created.
        last_epoch: epochs stepped so far (0 after construction).
    """

    def __init__(self, optimizer: Optimizer):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(
                f"{type(self).__name__}: expected a gpunet Optimizer, "
                f"got {type(optimizer).__name__}"
            )
        self.optimizer = optimizer
        self.base_lr = float(optimizer.lr)
        self.last_epoch = 0
        self._last_lr = self.optimizer.lr

    def get_lr(self) -> float:
        """The learning rate for epoch ``last_epoch``, from the current one."""
        raise NotImplementedError

    def step(self) -> None:
        """Advance one epoch and update ``optimizer.lr``."""
        self.last_epoch += 1
        self.optimizer.lr = self.get_lr()
        self._last_lr = self.optimizer.lr

    def get_last_lr(self) -> float:
        """The learning rate this scheduler set last."""
        return self._last_lr

    def state_dict(self) -> dict[str, Any]:
        """The scheduler's state as plain Python values (the optimizer excluded)."""
        return {k: v for k, v in vars(self).items() if k != "optimizer"}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
        vars(self).update(state)


class StepLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` every ``step_size`` epochs.

    Args:
        optimizer: the optimizer.
        step_size: period of the decay in epochs (int >= 1).
        gamma: factor of the decay (default 0.1).

    ``lr(epoch) = base_lr * gamma ** (epoch // step_size)``.
    """

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1):
        self.step_size = checks.integer(step_size, "StepLR", "step_size", minimum=1)
        self.gamma = checks.number(gamma, "StepLR", "gamma", 0)
        super().__init__(optimizer)

    def get_lr(self) -> float:
        if self.last_epoch % self.step_size != 0:
            return self.optimizer.lr
        return self.optimizer.lr * self.gamma


class ExponentialLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` every epoch: ``lr = base_lr * gamma**epoch``.

    Args:
        optimizer: the optimizer.
        gamma: factor of the decay per epoch.
    """

    def __init__(self, optimizer: Optimizer, gamma: float):
        self.gamma = checks.number(gamma, "ExponentialLR", "gamma", 0)
        super().__init__(optimizer)

    def get_lr(self) -> float:
        return self.optimizer.lr * self.gamma


class CosineAnnealingLR(LRScheduler):
    """Cosine annealing from ``base_lr`` down to ``eta_min`` over ``T_max`` epochs.

    Args:
        optimizer: the optimizer.
        T_max: half period in epochs (int >= 1).
        eta_min: the smallest learning rate (default 0).

    ``lr(t) = eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2``. Past
    ``T_max`` the rate rises again along the same cosine (period ``2 * T_max``), as in
    PyTorch, whose recursive form of this formula is used here.
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0):  # noqa: N803
        checks.integer(T_max, "CosineAnnealingLR", "T_max", minimum=1)
        checks.number(eta_min, "CosineAnnealingLR", "eta_min", 0)
        self.T_max = int(T_max)
        self.eta_min = float(eta_min)
        super().__init__(optimizer)

    def get_lr(self) -> float:
        lr, t, period = self.optimizer.lr, self.last_epoch, self.T_max
        if (t - 1 - period) % (2 * period) == 0:
            return lr + (self.base_lr - self.eta_min) * (1 - math.cos(math.pi / period)) / 2
        return (1 + math.cos(math.pi * t / period)) / (1 + math.cos(math.pi * (t - 1) / period)) * (
            lr - self.eta_min
        ) + self.eta_min


class ReduceLROnPlateau(LRScheduler):
    """Divide the learning rate when a monitored value stops improving.

    Args:
        optimizer: the optimizer.
        mode: ``"min"`` (default; lower is better, e.g. a loss) or ``"max"``.
        factor: the new rate is ``lr * factor`` (default 0.1, < 1).
        patience: epochs without improvement tolerated before reducing (default 10).
        threshold: what counts as an improvement (default 1e-4).
        threshold_mode: ``"rel"`` (default; better than ``best * (1 - threshold)`` in
            min mode, ``best * (1 + threshold)`` in max mode) or ``"abs"``
            (``best -/+ threshold``).
        cooldown: epochs to wait after a reduction before counting again (default 0).
        min_lr: lower bound of the rate (default 0).
        eps: reductions smaller than this are skipped (default 1e-8).

    Call ``step(metric)`` once per epoch with the monitored value.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: float = 0.0,
        eps: float = 1e-8,
    ):
        name = "ReduceLROnPlateau"
        self.mode = checks.choice(mode, name, "mode", ("min", "max"))
        self.threshold_mode = checks.choice(threshold_mode, name, "threshold_mode", ("rel", "abs"))
        self.factor = checks.number(factor, name, "factor", 0, 1, high_open=True)
        self.patience = checks.integer(patience, name, "patience", minimum=0)
        self.threshold = checks.number(threshold, name, "threshold", 0)
        self.cooldown = checks.integer(cooldown, name, "cooldown", minimum=0)
        self.min_lr = checks.number(min_lr, name, "min_lr", 0)
        self.eps = checks.number(eps, name, "eps", 0)
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        super().__init__(optimizer)

    def is_better(self, value: float) -> bool:
        """Whether ``value`` improves on the best so far by more than the threshold."""
        if self.mode == "min":
            if self.threshold_mode == "rel":
                return value < self.best * (1.0 - self.threshold)
            return value < self.best - self.threshold
        if self.threshold_mode == "rel":
            return value > self.best * (self.threshold + 1.0)
        return value > self.best + self.threshold

    def step(self, metric: Any) -> None:  # type: ignore[override]
        """Record this epoch's ``metric`` (a number or 0-d array) and maybe reduce lr."""
        value = float(metric)
        self.last_epoch += 1
        if self.is_better(value):
            self.best = value
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            old = float(self.optimizer.lr)
            new = max(old * self.factor, self.min_lr)
            if old - new > self.eps:
                self.optimizer.lr = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = self.optimizer.lr
