"""Learning-rate schedules: PyTorch's formulas, by hand."""

from __future__ import annotations

import math

import pytest

import gpunet
from gpunet.nn import Parameter
from gpunet.optim import SGD
from gpunet.optim.lr_scheduler import (
    CosineAnnealingLR,
    ExponentialLR,
    ReduceLROnPlateau,
    StepLR,
)


def optimizer(lr=0.1):
    return SGD([Parameter(gpunet.asarray([1.0]))], lr=lr)


def rates(scheduler, epochs):
    seen = []
    for _ in range(epochs):
        seen.append(scheduler.optimizer.lr)
        scheduler.step()
    return seen


def test_step_lr_decays_every_step_size_epochs():
    seen = rates(StepLR(optimizer(), step_size=3, gamma=0.5), 10)
    expected = [0.1 * 0.5 ** (epoch // 3) for epoch in range(10)]
    assert seen == pytest.approx(expected, rel=1e-15)


def test_exponential_lr():
    seen = rates(ExponentialLR(optimizer(), gamma=0.9), 20)
    assert seen == pytest.approx([0.1 * 0.9**e for e in range(20)], rel=1e-13)


@pytest.mark.parametrize("eta_min", [0.0, 0.01])
def test_cosine_follows_the_closed_form_also_past_t_max(eta_min):
    t_max = 10
    seen = rates(CosineAnnealingLR(optimizer(), T_max=t_max, eta_min=eta_min), 35)
    closed = [
        eta_min + (0.1 - eta_min) * (1 + math.cos(math.pi * t / t_max)) / 2 for t in range(35)
    ]
    assert seen == pytest.approx(closed, rel=1e-10, abs=1e-14)
    assert seen[t_max] == pytest.approx(eta_min, abs=1e-15)
    assert seen[2 * t_max] == pytest.approx(0.1)  # back up after a full period


def test_reduce_on_plateau_waits_patience_epochs_with_relative_threshold():
    opt = optimizer(1.0)
    scheduler = ReduceLROnPlateau(opt, factor=0.5, patience=2)
    scheduler.step(1.0)
    # 0.99995 is not below 1.0 * (1 - 1e-4): no improvement in "rel" mode.
    for metric in (0.99995, 0.99995):
        scheduler.step(metric)
        assert opt.lr == 1.0
    scheduler.step(0.99995)  # third bad epoch > patience 2
    assert opt.lr == 0.5
    scheduler.step(0.5)  # an improvement resets the count
    assert scheduler.best == 0.5 and scheduler.num_bad_epochs == 0


def test_reduce_on_plateau_respects_min_lr_and_cooldown():
    opt = optimizer(1.0)
    scheduler = ReduceLROnPlateau(opt, factor=0.1, patience=0, cooldown=1, min_lr=0.05)
    lrs = []
    for _ in range(6):
        scheduler.step(1.0)
        lrs.append(opt.lr)
    assert lrs == pytest.approx([1.0, 0.1, 0.1, 0.05, 0.05, 0.05])


def test_scheduler_state_dict_round_trip():
    scheduler = StepLR(optimizer(), step_size=2)
    rates(scheduler, 3)
    state = scheduler.state_dict()
    assert "optimizer" not in state and state["last_epoch"] == 3
    other = StepLR(optimizer(), step_size=5)
    other.load_state_dict(state)
    assert other.step_size == 2 and other.last_epoch == 3


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda o: StepLR(o, step_size=0), r"StepLR: step_size must be >= 1, got 0"),
        (lambda o: CosineAnnealingLR(o, T_max=0), r"CosineAnnealingLR: T_max must be >= 1, got 0"),
        (lambda o: ReduceLROnPlateau(o, mode="up"), r"ReduceLROnPlateau: mode must be one of "),
        (
            lambda o: ReduceLROnPlateau(o, factor=1.0),
            r"ReduceLROnPlateau: factor must be a "
            r"finite number in \[0, 1\), got 1\.0",
        ),
    ],
)
def test_bad_arguments_raise(make, message):
    with pytest.raises(ValueError, match=message):
        make(optimizer())


def test_scheduler_needs_a_gpunet_optimizer():
    with pytest.raises(TypeError, match="StepLR: expected a gpunet Optimizer, got dict"):
        StepLR({}, step_size=1)
