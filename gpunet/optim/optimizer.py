"""Optimizer: the base class that holds parameters, hyper-parameters and per-parameter state."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from gpunet import backend, kernels
from gpunet.nn.parameter import Parameter

# The fused update kernels live in kernels/optim.py (one op per update rule).
for _op in ("sgd", "adagrad", "rmsprop", "adam"):
    kernels.register(_op, "optim")


class Optimizer:
    """Base class of the optimizers.

    A subclass validates and stores its hyper-parameters as attributes, lists their names
    in ``hyperparameters``, creates a parameter's state arrays in ``init_state`` and
    applies its rule in ``update(param, state)``. The rule itself is a pure array-API
    function (the reference); when the backend has a fused kernel for it (``kernel_op``)
    and the arrays are contiguous, the kernel updates ``param.data`` and the state arrays
    in place in one pass instead.

    Per-parameter state is a dict of arrays plus ``"step"``, the number of updates that
    parameter has received (a Python int, so no device sync is needed to read it).

    Attributes:
        lr: the learning rate; schedulers read and write it.
        step_count: number of ``step()`` calls so far.
    """

    hyperparameters: tuple[str, ...] = ("lr",)
    kernel_op: str | None = None

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
        self.check("lr", lr, lr >= 0, ">= 0")
        self.lr = float(lr)
        self.state: list[dict[str, Any]] = [{} for _ in self.params]
        self.step_count = 0

    def check(self, label: str, value: Any, ok: bool, expected: str) -> None:
        """Raise ``ValueError`` naming the optimizer, the value and what was expected."""
        if not ok:
            raise ValueError(
                f"{type(self).__name__}: invalid {label} {value!r} (expected {expected})"
            )

    # ---------------------------------------------------------------- stepping

    def step(self) -> None:
        """Update every parameter that has a gradient."""
        self.step_count += 1
        for param, state in zip(self.params, self.state, strict=True):
            if param.grad is None:
                continue
            if not state:
                state.update(self.init_state(param))
                state["step"] = 0
            state["step"] += 1
            self.update(param, state)

    def init_state(self, param: Parameter) -> dict[str, Any]:
        """The state arrays of a parameter before its first update (default none)."""
        return {}

    def update(self, param: Parameter, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def fused_kernel(self, param: Parameter, *state_arrays: Any) -> Any:
        """The fused kernel for this rule when it can run on these arrays, else None."""
        if self.kernel_op is None:
            return None
        fused = backend.kernel(self.kernel_op, backend.namespace(param.data))
        if fused is None:
            return None
        arrays = (param.data, param.grad, *state_arrays)
        dtype = param.data.dtype
        if all(a.dtype == dtype and _contiguous(a) for a in arrays):
            return fused
        return None

    def zero_grad(self) -> None:
        """Forget every parameter's gradient (``.grad = None``)."""
        for param in self.params:
            param.grad = None

    # ---------------------------------------------------------------- checkpoints

    def state_dict(self) -> dict[str, Any]:
        """Hyper-parameters, step count and per-parameter state (arrays by ``"i.key"``).

        Hyper-parameters are plain Python values; ``"i.step"`` is a 0-d int64 array.
        """
        state: dict[str, Any] = {}
        for index, entries in enumerate(self.state):
            for key, value in entries.items():
                if key == "step":
                    xp = backend.namespace(self.params[index].data)
                    value = xp.asarray(value, dtype=xp.int64)
                state[f"{index}.{key}"] = value
        return {
            "optimizer": type(self).__name__,
            "step_count": self.step_count,
            "hyperparameters": {k: _plain(getattr(self, k)) for k in self.hyperparameters},
            "state": state,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned, onto the current backend.

        Raises:
            ValueError: if it comes from another optimizer or another parameter layout.
        """
        name = type(self).__name__
        if state_dict.get("optimizer") != name:
            raise ValueError(
                f"{name}.load_state_dict: state is from {state_dict.get('optimizer')!r}, not {name}"
            )
        restored: list[dict[str, Any]] = [{} for _ in self.params]
        for key, value in state_dict["state"].items():
            index_text, _, entry = key.partition(".")
            index = int(index_text)
            if index >= len(self.params):
                raise ValueError(
                    f"{name}.load_state_dict: state {key!r} is for parameter {index}, but the "
                    f"optimizer has {len(self.params)} parameters"
                )
            if entry == "step":
                restored[index][entry] = int(np.asarray(backend.to_numpy(value)).item())
                continue
            expected = self.params[index].shape
            if tuple(value.shape) != expected:
                raise ValueError(
                    f"{name}.load_state_dict: state {key!r} has shape {tuple(value.shape)}, "
                    f"but parameter {index} has shape {expected}"
                )
            restored[index][entry] = backend.asarray(value, dtype=self.params[index].data.dtype)
        unknown = set(state_dict["hyperparameters"]) - set(self.hyperparameters)
        if unknown:
            raise ValueError(f"{name}.load_state_dict: unknown hyper-parameters {sorted(unknown)}")
        for key, value in state_dict["hyperparameters"].items():
            setattr(self, key, tuple(value) if isinstance(value, list) else value)
        self.state = restored
        self.step_count = int(state_dict["step_count"])

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.hyperparameters)
        return f"{type(self).__name__}({settings})"


def _contiguous(array: Any) -> bool:
    flags = getattr(array, "flags", None)
    return flags is not None and bool(flags.c_contiguous)


def _plain(value: Any) -> Any:
    """A hyper-parameter as plain Python data (tuples become lists, as JSON has them)."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value
