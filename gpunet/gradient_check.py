"""Finite-difference gradient checking, in float64, for layers and losses.

``gpunet.gradcheck(layer, x)`` compares the gradients a layer's ``backward`` returns
(for its inputs and every parameter) with central differences of a fixed random
projection of its output, ``L = sum(forward(x) * R)``. ``gpunet.gradcheck(loss, pred,
target)`` compares ``loss.backward()`` with central differences of the loss.

The error of one element is ``|analytic - numeric| / max(1, |analytic|, |numeric|)``:
relative for gradients above 1 in size, absolute below, so that tiny gradients do not
divide by noise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from gpunet import backend, checks
from gpunet.losses import Loss
from gpunet.nn.layer import Layer


@dataclass(frozen=True)
class GradcheckResult:
    """The outcome of a gradient check.

    Attributes:
        max_error: the worst error over all checked elements.
        where: the array and index of the worst element, e.g. ``"weight[2, 0]"``.
        analytic: the gradient ``backward`` gave there.
        numeric: the central-difference estimate there.
        checked: how many elements were compared.
        tolerance: the bound ``ok`` is judged against.
    """

    max_error: float
    where: str
    analytic: float
    numeric: float
    checked: int
    tolerance: float

    @property
    def ok(self) -> bool:
        return self.max_error <= self.tolerance

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        verdict = "ok" if self.ok else "FAILED"
        return (
            f"gradcheck {verdict}: max error {self.max_error:.3e} at {self.where} "
            f"(analytic {self.analytic:.6e}, numeric {self.numeric:.6e}; "
            f"{self.checked} elements, tolerance {self.tolerance:.0e})"
        )


def gradcheck(
    target: Layer | Loss,
    *inputs: Any,
    eps: float = 1e-6,
    tolerance: float = 1e-6,
    seed: int = 0,
) -> GradcheckResult:
    """Check ``target``'s backward against central finite differences in float64.

    Args:
        target: a layer (its parameters must be float64: ``layer.astype("float64")``) or
            a loss.
        *inputs: for a layer, its forward arguments (the first is checked); for a loss,
            ``pred, target`` (``pred`` is checked). Converted to float64 on the backend,
            except integer arrays (labels), which are passed unchanged.
        eps: the finite-difference step (default 1e-6).
        tolerance: the largest error judged ok (default 1e-6).
        seed: seed of the random output projection (default 0).

    Returns:
        A ``GradcheckResult``; ``bool(result)`` tells whether it passed.

    Raises:
        TypeError: for a target that is neither, or inputs that are not real numbers.
        ValueError: for a layer whose parameters are not float64, or bad settings.
    """
    checks.number(eps, "gradcheck", "eps", 0, low_open=True)
    checks.number(tolerance, "gradcheck", "tolerance", 0)
    checks.integer(seed, "gradcheck", "seed", minimum=0)
    if not inputs:
        raise TypeError("gradcheck: expected the inputs to check after the target")
    for index, x in enumerate(inputs):
        if checks.is_array(x):  # nested lists are made arrays below
            checks.real(x, "gradcheck", f"input {index}")
    arrays = [_as_float64(x) for x in inputs]
    if isinstance(target, Loss):
        probes = _loss_probes(target, arrays)
    elif isinstance(target, Layer):
        probes = _layer_probes(target, arrays, seed)
    else:
        raise TypeError(f"gradcheck: expected a Layer or a Loss, got {type(target).__name__}")
    return _compare(probes, eps, tolerance)


# What is checked for one array: (analytic gradient, objective of the array's values,
# the values at which the gradient was taken).
Probe = tuple[np.ndarray, Callable[[np.ndarray], float], np.ndarray]


def _loss_probes(loss: Loss, arrays: list[Any]) -> dict[str, Probe]:
    pred, rest = arrays[0], arrays[1:]
    loss(pred, *rest)
    analytic = backend.to_numpy(loss.backward())

    def evaluate(values: np.ndarray) -> float:
        return float(backend.to_numpy(loss(backend.asarray(values, dtype="float64"), *rest)))

    return {"pred": (analytic, evaluate, backend.to_numpy(pred))}


def _layer_probes(layer: Layer, arrays: list[Any], seed: int) -> dict[str, Probe]:
    for name, p in layer.named_parameters():
        if str(p.data.dtype).rsplit(".", 1)[-1] != "float64":
            raise ValueError(
                f"gradcheck: parameter {name!r} of {type(layer).__name__} is "
                f"{p.data.dtype}; call layer.astype('float64') first"
            )
    x, rest = arrays[0], arrays[1:]
    output = _first(layer(x, *rest))
    projection = np.random.default_rng(seed).standard_normal(tuple(output.shape))
    projection_device = backend.asarray(projection, dtype="float64")
    layer.zero_grad()
    grad_in = layer.backward(projection_device)

    def objective(x_value: Any) -> float:
        return float(np.sum(backend.to_numpy(_first(layer(x_value, *rest))) * projection))

    probes: dict[str, Probe] = {
        "input": (
            backend.to_numpy(grad_in),
            lambda values: objective(backend.asarray(values, dtype="float64")),
            backend.to_numpy(x).copy(),
        )
    }
    for name, p in layer.named_parameters():
        if p.grad is None:
            raise ValueError(f"gradcheck: backward left no gradient for parameter {name!r}")

        def evaluate(values: np.ndarray, param: Any = p) -> float:
            saved = param.data
            param.data = backend.asarray(values, dtype="float64")
            try:
                return objective(x)
            finally:
                param.data = saved

        probes[name] = (backend.to_numpy(p.grad), evaluate, backend.to_numpy(p.data).copy())
    return probes


def _compare(probes: dict[str, Probe], eps: float, tolerance: float) -> GradcheckResult:
    worst = (-1.0, "", 0.0, 0.0)
    checked = 0
    for name, probe in probes.items():
        analytic, evaluate, base = probe
        if analytic.shape != base.shape:
            raise ValueError(
                f"gradcheck: gradient of {name} has shape {analytic.shape}, expected {base.shape}"
            )
        values = base.astype(np.float64, copy=True)
        for index in np.ndindex(*values.shape):
            original = values[index]
            values[index] = original + eps
            up = evaluate(values)
            values[index] = original - eps
            down = evaluate(values)
            values[index] = original
            numeric = (up - down) / (2 * eps)
            exact = float(analytic[index])
            error = abs(exact - numeric) / max(1.0, abs(exact), abs(numeric))
            checked += 1
            if error > worst[0]:
                where = f"{name}[{', '.join(str(i) for i in index)}]"
                worst = (error, where, exact, numeric)
    return GradcheckResult(worst[0], worst[1], worst[2], worst[3], checked, tolerance)


def _as_float64(x: Any) -> Any:
    if isinstance(x, np.ndarray) and x.dtype.kind in "iub":
        return backend.asarray(x)
    if not isinstance(x, np.ndarray) and not isinstance(x, list | tuple | float | int):
        ns = backend.namespace(x)
        if not ns.isdtype(x.dtype, "real floating"):
            return x
    return backend.asarray(x, dtype="float64")


def _first(output: Any) -> Any:
    return output[0] if isinstance(output, tuple) else output
