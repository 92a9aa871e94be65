"""GradientMonitor: per-layer gradient norms, to see vanishing and exploding gradients."""

from __future__ import annotations

import warnings
from typing import Any

from gpunet import backend, checks
from gpunet.callbacks.base import Callback
from gpunet.nn.parameter import Parameter


class GradientMonitor(Callback):
    """Record the gradient norm of every layer with parameters, step by step.

    A layer's norm is the 2-norm of all its own parameters' gradients together (weight
    and bias). The first time a layer's norm falls below ``low`` or rises above ``high``
    the monitor warns, once per layer and kind, naming the layer: gradients that small no
    longer move the weights (vanishing), gradients that large make steps that overshoot
    (exploding; ``gpunet.optim.clip_grad_norm`` cures it).

    With ``gpunet.fit`` pass it in ``callbacks=[...]``; it records after each batch. In a
    manual loop call ``monitor.record(model)`` after ``model.backward(...)``.

    Args:
        every: record every ``every``-th step (default 1); each record reads the norms
            back from the device once.
        low: the vanishing threshold (default 1e-7).
        high: the exploding threshold (default 1e3).

    Attributes:
        history: ``{layer name: [norm per recorded step]}``, layers in forward order,
            named ``"<dotted path> (<type>)"``, e.g. ``"0 (Dense)"``.
        steps: the step numbers (0-based) of the recorded entries.
    """

    def __init__(self, every: int = 1, low: float = 1e-7, high: float = 1e3):
        every = checks.integer(every, "GradientMonitor", "every", minimum=1)
        low = checks.number(low, "GradientMonitor", "low", 0)
        high = checks.number(high, "GradientMonitor", "high", 0)
        if not low < high:
            raise ValueError(
                f"GradientMonitor: expected 0 <= low < high, got low={low!r} and high={high!r}"
            )
        self.every, self.low, self.high = every, float(low), float(high)
        self.reset()

    def reset(self) -> None:
        """Forget everything recorded and every warning given."""
        self.history: dict[str, list[float]] = {}
        self.steps: list[int] = []
        self._count = 0
        self._warned: set[tuple[str, str]] = set()

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.reset()

    def on_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.record(self.model)

    def record(self, model: Any) -> dict[str, float] | None:
        """Record the current gradient norms of ``model``'s layers.

        Returns:
            ``{layer name: norm}`` for this step, or None when the step is skipped
            (``every``) or no layer has a gradient.
        """
        step = self._count
        self._count += 1
        if step % self.every != 0:
            return None
        names, squares = [], []
        for name, layer in model.layers():
            grads = [p.grad for p in _own_parameters(layer) if p.grad is not None]
            if not grads:
                continue
            xp = backend.namespace(*grads)
            names.append(f"{name or 'model'} ({type(layer).__name__})")
            squares.append(sum(xp.sum(xp.astype(g, xp.float64) ** 2) for g in grads))
        if not names:
            return None
        xp = backend.namespace(*squares)
        norms = backend.to_numpy(xp.sqrt(xp.stack(squares)))  # one device read per step
        current = {name: float(norm) for name, norm in zip(names, norms, strict=True)}
        for name, norm in current.items():
            self.history.setdefault(name, []).append(norm)
            self._check(name, norm, step)
        self.steps.append(step)
        return current

    def _check(self, name: str, norm: float, step: int) -> None:
        if norm < self.low:
            kind, detail = "vanishing", f"below {self.low:g}"
        elif norm > self.high:
            kind, detail = "exploding", f"above {self.high:g}"
        else:
            return
        if (name, kind) in self._warned:
            return
        self._warned.add((name, kind))
        warnings.warn(
            f"GradientMonitor: layer {name} has gradient norm {norm:.3g} at step {step}, "
            f"{detail}: {kind} gradients",
            RuntimeWarning,
            stacklevel=3,
        )

    def layer_norms(self) -> dict[str, float]:
        """The mean recorded norm of each layer."""
        return {name: sum(v) / len(v) for name, v in self.history.items()}

    def ratio(self) -> float:
        """Mean norm of the first layer divided by that of the last (1 = even flow)."""
        means = list(self.layer_norms().values())
        if len(means) < 2:
            raise ValueError("GradientMonitor.ratio: needs records of at least two layers")
        return means[0] / means[-1]


def _own_parameters(layer: Any) -> list[Any]:
    """The parameters a layer holds itself, not those of its sub-layers."""
    return [value for value in vars(layer).values() if isinstance(value, Parameter)]
