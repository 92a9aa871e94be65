"""Optimizers and schedulers against torch.optim: same gradients, same trajectories."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import gpunet
from gpunet import optim
from gpunet.nn import Parameter
from gpunet.optim import lr_scheduler

pytestmark = pytest.mark.crosscheck
torch = pytest.importorskip("torch")

STEPS = 50
# (40, 30) is above the fused kernels' min_size, so the "kernel" runs use them
SHAPES = [(5, 3), (3,), (40, 30)]


def _combinations(**options):
    keys = list(options)
    for values in itertools.product(*(options[k] for k in keys)):
        yield dict(zip(keys, values, strict=True))


def _sgd_cases():
    for c in _combinations(momentum=[0.0, 0.9], dampening=[0.0, 0.3], nesterov=[False, True],
                           weight_decay=[0.0, 0.05]):  # fmt: skip
        if c["nesterov"] and (c["momentum"] == 0 or c["dampening"] != 0):
            continue
        yield "SGD", {"lr": 0.05, **c}


CASES = [
    *_sgd_cases(),
    *(("Adagrad", {"lr": 0.1, **c}) for c in _combinations(
        lr_decay=[0.0, 0.01], weight_decay=[0.0, 0.05], initial_accumulator_value=[0.0, 0.1])),
    *(("RMSprop", {"lr": 0.01, **c}) for c in _combinations(
        momentum=[0.0, 0.5], centered=[False, True], weight_decay=[0.0, 0.05])),
    *(("Adam", {"lr": 0.01, **c}) for c in _combinations(
        weight_decay=[0.0, 0.05], amsgrad=[False, True])),
    *(("AdamW", {"lr": 0.01, **c}) for c in _combinations(
        weight_decay=[0.0, 0.05], amsgrad=[False, True])),
]  # fmt: skip


@pytest.mark.parametrize("kernels", ["kernel", "reference"])
@pytest.mark.parametrize(("name", "hyper"), CASES, ids=[f"{n}-{h}" for n, h in CASES])
def test_trajectory_matches_torch(name, hyper, kernels, monkeypatch):
    monkeypatch.setenv("GPUNET_KERNELS", "1" if kernels == "kernel" else "0")
    rng = np.random.default_rng(7)
    starts = [rng.standard_normal(shape) for shape in SHAPES]
    ours = [Parameter(gpunet.asarray(s, dtype="float64")) for s in starts]
    theirs = [torch.nn.Parameter(torch.tensor(s, dtype=torch.float64)) for s in starts]
    opt = getattr(optim, name)(ours, **hyper)
    reference = getattr(torch.optim, name)(theirs, **hyper)
    for step in range(STEPS):
        for p, q in zip(ours, theirs, strict=True):
            # Gradients that depend on the parameters, so a diverging path would show.
            grad = np.sin(gpunet.to_numpy(p.data) * 3.0 + step) + rng.normal(size=p.shape) * 0.1
            p.grad = gpunet.asarray(grad, dtype="float64")
            q.grad = torch.tensor(grad, dtype=torch.float64)
        opt.step()
        reference.step()
    for p, q in zip(ours, theirs, strict=True):
        difference = np.abs(gpunet.to_numpy(p.data) - q.detach().numpy()).max()
        assert difference < 1e-10, f"{name} {hyper}: max abs difference {difference:.3e}"


SCHEDULERS = [
    ("StepLR", {"step_size": 7, "gamma": 0.5}),
    ("ExponentialLR", {"gamma": 0.95}),
    ("CosineAnnealingLR", {"T_max": 30, "eta_min": 0.001}),
    ("CosineAnnealingLR", {"T_max": 100}),
]


@pytest.mark.parametrize(("name", "options"), SCHEDULERS, ids=[n for n, _ in SCHEDULERS])
def test_schedule_matches_torch_for_100_epochs(name, options):
    ours = optim.SGD([Parameter(gpunet.asarray([1.0]))], lr=0.1)
    theirs = torch.optim.SGD([torch.nn.Parameter(torch.ones(1))], lr=0.1)
    mine = getattr(lr_scheduler, name)(ours, **options)
    reference = getattr(torch.optim.lr_scheduler, name)(theirs, **options)
    for epoch in range(100):
        assert ours.lr == pytest.approx(theirs.param_groups[0]["lr"], rel=1e-12, abs=1e-15), epoch
        theirs.step()
        mine.step()
        reference.step()
    assert mine.get_last_lr() == pytest.approx(reference.get_last_lr()[0], rel=1e-12, abs=1e-15)


@pytest.mark.parametrize(
    "options",
    [{}, {"patience": 3, "factor": 0.5, "cooldown": 2, "min_lr": 1e-3},
     {"mode": "max", "threshold_mode": "abs", "threshold": 0.01, "patience": 2}],
)  # fmt: skip
def test_reduce_on_plateau_matches_torch_for_100_epochs(options):
    ours = optim.SGD([Parameter(gpunet.asarray([1.0]))], lr=0.1)
    theirs = torch.optim.SGD([torch.nn.Parameter(torch.ones(1))], lr=0.1)
    mine = lr_scheduler.ReduceLROnPlateau(ours, **options)
    reference = torch.optim.lr_scheduler.ReduceLROnPlateau(theirs, **options)
    rng = np.random.default_rng(3)
    # A metric that improves, stalls and wobbles, so every branch is taken.
    metrics = np.concatenate([np.linspace(1, 0.5, 30), 0.5 + 0.01 * rng.standard_normal(70)])
    reductions = 0
    for metric in metrics:
        theirs.step()
        before = ours.lr
        mine.step(float(metric))
        reference.step(float(metric))
        reductions += ours.lr < before
        assert ours.lr == theirs.param_groups[0]["lr"]
    assert reductions >= 1
