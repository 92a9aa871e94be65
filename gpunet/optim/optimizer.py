"""Optimizer: the base class that holds parameters, hyper-parameters and per-parameter state."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import numpy as np

from gpunet import backend, checks, kernels
from gpunet.nn.parameter import Parameter

# The fused update kernels live in kernels/optim.py (one op per update rule).
for _op in ("sgd", "adagrad", "rmsprop", "adam"):
    kernels.register(_op, "optim")


class Optimizer:
    """Base class of the optimizers.

    A subclass lists its hyper-parameters' names in ``hyperparameters``, checks their
    values in ``checked_hyperparameters`` (used by the constructor and by
    ``load_state_dict`` alike), creates a parameter's state arrays in ``init_state``
    and applies its rule in ``update(param, state)``. The rule itself is a pure array-API
    function (the reference); when the backend has a fused kernel for it (``kernel_op``)
    and the arrays are contiguous, the kernel updates ``param.data`` and the state arrays
    in place in one pass instead.

    Per-parameter state is a dict of arrays plus ``"step"``, the number of updates that
    parameter has received (a Python int, so no device sync is needed to read it).

    ``step()`` checks every gradient before it updates any parameter: an array of the
    parameter's library and shape; a gradient of another real dtype is cast to the
    parameter's, so parameters and state never change dtype.

    Args:
        params: the parameters to optimise (``model.parameters()``), each once.
        **hyperparameters: the values of the names in ``hyperparameters``.

    Attributes:
        lr: the learning rate; schedulers read and write it.
        step_count: number of ``step()`` calls so far.
    """

    hyperparameters: tuple[str, ...] = ("lr",)
    kernel_op: str | None = None

    def __init__(self, params: Iterable[Parameter], **hyperparameters: Any):
        self.params = _checked_parameters(params, type(self).__name__)
        vars(self).update(self.checked_hyperparameters(hyperparameters))
        self.state: list[dict[str, Any]] = [{} for _ in self.params]
        self.step_count = 0

    @classmethod
    def checked_hyperparameters(cls, values: dict[str, Any]) -> dict[str, Any]:
        """``values`` (every name of ``hyperparameters``) checked and normalised.

        Subclasses extend it; the base checks ``lr``.

        Raises:
            TypeError: for a value of the wrong type (``lr='0.1'``).
            ValueError: for a value out of range (a negative or NaN ``lr``).
        """
        return {"lr": checks.number(values["lr"], cls.__name__, "lr", 0)}

    # ---------------------------------------------------------------- stepping

    def step(self) -> None:
        """Update every parameter that has a gradient (all checked first)."""
        self.check_gradients()
        self.step_count += 1
        for param, state in zip(self.params, self.state, strict=True):
            if param.grad is None:
                continue
            if not state:
                state.update(self.init_state(param))
                state["step"] = 0
            state["step"] += 1
            self.update(param, state)

    def check_gradients(self) -> None:
        """Check every ``.grad`` against its parameter; cast one of another real dtype.

        Raises:
            TypeError: for a gradient that is not an array, holds complex or boolean
                data, or belongs to another array library than its parameter.
            ValueError: for a gradient of another shape than its parameter.
        """
        for index, param in enumerate(self.params):
            grad, data = param.grad, param.data
            # 'is' on dtypes: NumPy's are shared objects; an equal one that is not the same
            # object takes the full check, which keeps it as it is
            if grad is not None and (
                type(grad) is not type(data)
                or grad.dtype is not data.dtype
                or grad.shape != data.shape
            ):
                param.grad = self._checked_gradient(index, param)

    def _checked_gradient(self, index: int, param: Parameter) -> Any:
        where = (self, "step")
        what = f"the gradient of parameter {index} ({param.name or 'unnamed'})"
        grad = checks.floating(param.grad, where, param.data.dtype, what=what, like=param.data)
        checks.same_shape(grad, param.data.shape, where, what)
        return grad

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

        All or nothing: everything is checked (``checked_state_dict``) before anything
        is applied.

        Raises:
            ValueError: if it comes from another optimizer or another parameter layout,
                or holds a hyper-parameter the constructor would refuse.
            TypeError: for values of the wrong type.
        """
        checked = self.checked_state_dict(state_dict)
        vars(self).update(checked["hyperparameters"])
        restored: list[dict[str, Any]] = [{} for _ in self.params]
        for key, value in checked["state"].items():
            index, _, entry = key.partition(".")
            restored[int(index)][entry] = value
        self.state = restored
        self.step_count = checked["step_count"]

    def checked_state_dict(self, state_dict: dict[str, Any]) -> dict[str, Any]:
        """``state_dict`` checked against this optimizer and its parameters, its arrays on
        the current backend in the parameters' dtypes and its steps Python ints, ready
        for ``load_state_dict``; the optimizer itself is not changed.

        Raises:
            ValueError, TypeError: as ``load_state_dict``.
        """
        name = type(self).__name__
        where = f"{name}.load_state_dict"
        if not isinstance(state_dict, dict) or not {
            "optimizer",
            "step_count",
            "hyperparameters",
            "state",
        } <= set(state_dict):
            raise ValueError(
                f"{where}: expected a dict with optimizer, step_count, hyperparameters and "
                f"state (as state_dict() returns), got {_describe(state_dict)}"
            )
        if state_dict["optimizer"] != name:
            raise ValueError(f"{where}: state is from {state_dict['optimizer']!r}, not {name}")
        loaded = state_dict["hyperparameters"]
        if not isinstance(loaded, dict):
            raise TypeError(f"{where}: hyperparameters must be a dict, got {_describe(loaded)}")
        unknown = set(loaded) - set(self.hyperparameters)
        if unknown:
            raise ValueError(f"{where}: unknown hyper-parameters {sorted(unknown)}")
        current = {k: getattr(self, k) for k in self.hyperparameters}
        hyper = type(self).checked_hyperparameters({**current, **loaded})
        step_count = checks.integer(state_dict["step_count"], where, "step_count", minimum=0)
        return {
            "optimizer": name,
            "step_count": step_count,
            "hyperparameters": hyper,
            "state": self._checked_state(state_dict["state"], hyper, where),
        }

    def _checked_state(self, state: Any, hyper: dict[str, Any], where: str) -> dict[str, Any]:
        if not isinstance(state, dict):
            raise TypeError(f"{where}: state must be a dict of arrays, got {_describe(state)}")
        checked: dict[str, Any] = {}
        names: dict[int, set[str]] = {}
        for key, value in state.items():
            index_text, _, entry = str(key).partition(".")
            if not index_text.isdigit() or not entry:
                raise ValueError(f"{where}: state key {key!r} is not '<parameter index>.<name>'")
            index = int(index_text)
            if index >= len(self.params):
                raise ValueError(
                    f"{where}: state {key!r} is for parameter {index}, but the optimizer has "
                    f"{len(self.params)} parameters"
                )
            names.setdefault(index, set()).add(entry)
            if entry == "step":
                checked[key] = _step_number(value, where, key)
                continue
            checks.real(value, where, f"state {key!r}")
            expected = self.params[index].shape
            if tuple(value.shape) != expected:
                raise ValueError(
                    f"{where}: state {key!r} has shape {tuple(value.shape)}, but parameter "
                    f"{index} has shape {expected}"
                )
            checked[key] = backend.asarray(value, dtype=self.params[index].data.dtype)
        if names:
            # The entries a parameter's state must hold under the loaded settings.
            probe = copy.copy(self)
            vars(probe).update(hyper)
            expected_names = {*probe.init_state(self.params[min(names)]), "step"}
            for index, found in sorted(names.items()):
                if found != expected_names:
                    raise ValueError(
                        f"{where}: the state of parameter {index} holds {sorted(found)}, but "
                        f"{type(self).__name__} with these hyper-parameters keeps "
                        f"{sorted(expected_names)}"
                    )
        return checked

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.hyperparameters)
        return f"{type(self).__name__}({settings})"


def _checked_parameters(params: Any, name: str) -> list[Parameter]:
    if hasattr(params, "parameters") and not isinstance(params, list | tuple):
        raise TypeError(
            f"{name}: params must be the parameters, got a {type(params).__name__}; "
            "pass model.parameters()"
        )
    try:
        params = list(params)
    except TypeError:
        raise TypeError(
            f"{name}: params must be an iterable of Parameters (model.parameters()), "
            f"got {_describe(params)}"
        ) from None
    if not params:
        raise ValueError(f"{name}: got an empty parameter list")
    first_seen: dict[int, int] = {}
    for index, p in enumerate(params):
        if not isinstance(p, Parameter):
            raise TypeError(
                f"{name}: parameter {index} is {type(p).__name__}, not a Parameter "
                f"(pass model.parameters())"
            )
        earlier = first_seen.setdefault(id(p), index)
        if earlier != index:
            raise ValueError(
                f"{name}: parameter {index} is parameter {earlier} again; list each "
                "parameter once (it would be updated twice per step)"
            )
    return params


def _step_number(value: Any, where: str, key: str) -> int:
    """A parameter's step count from a state dict: an int or a 0-d integer array, >= 1."""
    if not isinstance(value, int):
        host = np.asarray(backend.to_numpy(value)) if checks.is_array(value) else None
        if host is None or host.shape != () or host.dtype.kind not in "iu":
            raise TypeError(f"{where}: state {key!r} must be an integer step count, got {value!r}")
        value = int(host)
    return checks.integer(value, where, f"state {key!r}", minimum=1)


def _describe(value: Any) -> str:
    return type(value).__name__


def _contiguous(array: Any) -> bool:
    flags = getattr(array, "flags", None)
    return flags is not None and bool(flags.c_contiguous)


def _plain(value: Any) -> Any:
    """A hyper-parameter as plain Python data (tuples become lists, as JSON has them)."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value
