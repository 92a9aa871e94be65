"""Optimizer: the base class that holds parameters, hyper-parameters and per-parameter state."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gpunet import backend
from gpunet.nn.parameter import Parameter


class Optimizer:
    """Base class of the optimizers.

    Subclasses set their hyper-parameters as attributes, list their names in
    ``hyperparameters``, and implement ``update(param, state)``, which changes
    ``param.data`` in place of the old value using ``param.grad`` and the per-parameter
    ``state`` dict (arrays, created lazily on the first step).

    Attributes:
        lr: the learning rate; schedulers read and write it.
        step_count: number of ``step()`` calls so far.
    """

    hyperparameters: tuple[str, ...] = ("lr",)

    def __init__(self, params: Iterable[Parameter], lr: float):
        self.params = list(params)
        name = type(self).__name__
        if not self.params:
            raise ValueError(f"{name}: got an empty parameter list")
        for index, p in enumerate(self.params):
            if not isinstance(p, Parameter):
                raise TypeError(
                    f"{name}: parameter {index} is {type(p).__name__}, not a Parameter "
                    f"(pass model.parameters())"
                )
        _check(name, "lr", lr, lr >= 0)
        self.lr = float(lr)
        self.state: list[dict[str, Any]] = [{} for _ in self.params]
        self.step_count = 0

    def step(self) -> None:
        """Update every parameter that has a gradient."""
        self.step_count += 1
        for param, state in zip(self.params, self.state, strict=True):
            if param.grad is not None:
                self.update(param, state)

    def update(self, param: Parameter, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def zero_grad(self) -> None:
        """Forget every parameter's gradient (``.grad = None``)."""
        for param in self.params:
            param.grad = None

    def state_dict(self) -> dict[str, Any]:
        """Hyper-parameters, step count and per-parameter state (arrays by ``"i.key"``)."""
        return {
            "optimizer": type(self).__name__,
            "step_count": self.step_count,
            "hyperparameters": {k: getattr(self, k) for k in self.hyperparameters},
            "state": {
                f"{index}.{key}": value
                for index, state in enumerate(self.state)
                for key, value in state.items()
            },
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned, onto the current backend.

        Raises:
            ValueError: if it comes from another optimizer or another parameter layout.
        """
        name = type(self).__name__
        if state_dict.get("optimizer") != name:
            raise ValueError(
                f"{name}.load_state_dict: state is from {state_dict.get('optimizer')!r}, "
                f"not {name}"
            )
        restored: list[dict[str, Any]] = [{} for _ in self.params]
        for key, value in state_dict["state"].items():
            index_text, _, entry = key.partition(".")
            index = int(index_text)
            if index >= len(self.params):
                raise ValueError(
                    f"{name}.load_state_dict: state for parameter {index}, but the optimizer "
                    f"has {len(self.params)} parameters"
                )
            expected = self.params[index].shape
            if entry != "step" and tuple(value.shape) not in (expected, ()):
                raise ValueError(
                    f"{name}.load_state_dict: state {key!r} has shape {tuple(value.shape)}, "
                    f"parameter {index} has shape {expected}"
                )
            restored[index][entry] = backend.asarray(value, dtype=self.params[index].data.dtype)
        for key, value in state_dict["hyperparameters"].items():
            setattr(self, key, value)
        self.state = restored
        self.step_count = int(state_dict["step_count"])

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.hyperparameters)
        return f"{type(self).__name__}({settings})"


def _check(optimizer: str, label: str, value: float, ok: bool) -> None:
    if not ok:
        raise ValueError(f"{optimizer}: invalid {label} {value!r}")
