"""Layer, the unit networks are built from, and Sequential."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from gpunet import backend, checks
from gpunet.nn.parameter import Parameter


class Layer:
    """Base class of every layer.

    A layer computes ``forward(x)`` (also ``layer(x)``), caches what its backward pass
    needs, and in ``backward(grad_out)`` returns the gradient with respect to its input
    while ADDING the gradients of its parameters to their ``.grad``.

    Parameters are found by walking the layer's attributes in the order they were set:
    ``Parameter`` attributes, sub-layers, and lists or tuples of sub-layers. Non-learned
    state that belongs in checkpoints (running statistics) is named in ``buffers``.

    Inputs are checked with ``gpunet.checks`` before any computation: ``forward`` takes
    an array of real numbers, cast by the dtype rule (``checks.floating``) to the
    layer's parameter dtype (a layer without parameters keeps a floating input's dtype
    and casts integers to float32); ``backward`` takes a gradient of the shape, library
    and dtype of the last forward's output (``checked_gradient``).
    """

    buffers: tuple[str, ...] = ()
    training: bool = True
    # (shape, dtype, array type) of the last forward's output; None before the first.
    _output: checks.Output | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def forward(self, x: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define forward")

    def backward(self, grad_out: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define backward")

    # ---------------------------------------------------------------- checks

    def checked_input(self, x: Any, like: Any = None) -> Any:
        """``x`` checked and cast for ``forward`` by the dtype rule (see ``checks.floating``).

        Args:
            x: the input.
            like: a parameter array: ``x`` must share its library and is cast to its
                dtype (default None: a layer without parameters).

        Raises:
            TypeError: for a non-array, complex, boolean, object or string data, or an
                array of another library.
            ValueError: for an empty batch.
        """
        if type(x) is np.ndarray and x.ndim and len(x):  # the common case, from attributes
            if like is None:
                if x.dtype.kind == "f":
                    return x
            elif type(like) is np.ndarray and x.dtype is like.dtype:  # NumPy's dtypes are
                return x  # shared objects: 'is' answers for equal ones, else see below
        x = checks.floating(x, (self, "forward"), None if like is None else like.dtype, like=like)
        if not x.shape or not x.shape[0]:
            checks.nonempty(x, (self, "forward"))
        return x

    def remember_output(self, y: Any) -> Any:
        """Record ``y``'s shape and dtype for ``checked_gradient``; returns ``y``."""
        self._output = (y.shape, y.dtype, type(y))
        return y

    def checked_gradient(self, grad_out: Any) -> Any:
        """``grad_out`` checked for ``backward`` against the last forward's output.

        Raises:
            RuntimeError: before any forward pass.
            TypeError: for a non-array, complex or boolean data, or another library.
            ValueError: for a shape other than the output's.
        """
        produced = self._output
        if (  # the common case, answered here without a call
            produced is not None
            and type(grad_out) is produced[2]
            and grad_out.dtype is produced[1]
            and grad_out.shape == produced[0]
        ):
            return grad_out
        return checks.gradient(grad_out, (self, "backward"), produced)

    # ---------------------------------------------------------------- structure

    def children(self) -> Iterator[tuple[str, Layer]]:
        """The direct sub-layers, as (name, layer) pairs."""
        for attr, value in vars(self).items():
            if isinstance(value, Layer):
                yield attr, value
            elif isinstance(value, list | tuple):
                for index, item in enumerate(value):
                    if isinstance(item, Layer):
                        yield f"{attr}.{index}", item

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """Every parameter of this layer and its sub-layers, with dotted names."""
        for attr, value in vars(self).items():
            if isinstance(value, Parameter):
                yield prefix + attr, value
        for child_name, child in self.children():
            yield from child.named_parameters(f"{prefix}{child_name}.")

    def parameters(self) -> list[Parameter]:
        """Every parameter of this layer and its sub-layers."""
        return [p for _, p in self.named_parameters()]

    def layers(self) -> Iterator[tuple[str, Layer]]:
        """This layer and every layer below it, in forward order, with dotted names."""
        yield "", self
        for child_name, child in self.children():
            for name, layer in child.layers():
                yield (f"{child_name}.{name}" if name else child_name), layer

    def zero_grad(self) -> None:
        """Forget the accumulated gradients (``.grad = None``)."""
        for p in self.parameters():
            p.grad = None

    # ---------------------------------------------------------------- modes

    def train(self, mode: bool = True) -> Layer:
        """Training mode (dropout active, batch statistics used). Returns self."""
        for _, layer in self.layers():
            layer.training = mode
        return self

    def eval(self) -> Layer:
        """Inference mode. Returns self."""
        return self.train(False)

    # ---------------------------------------------------------------- state

    def state_dict(self) -> dict[str, Any]:
        """Parameters and buffers by dotted name (the arrays themselves, not copies)."""
        state = {name: p.data for name, p in self.named_parameters()}
        for name, layer in self.layers():
            for buffer in layer.buffers:
                state[f"{name}.{buffer}" if name else buffer] = getattr(layer, buffer)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Copy arrays into the parameters and buffers, onto the current backend.

        All or nothing: the whole state is checked (``checked_state_dict``) before the
        first array is replaced.

        Raises:
            ValueError: listing every missing, unexpected or wrongly shaped entry.
            TypeError: for an entry that is not an array of real numbers.
        """
        state = self.checked_state_dict(state)
        params = dict(self.named_parameters())
        owners = dict(self.layers())
        for key, array in state.items():
            if key in params:
                params[key].data = array
            else:
                owner_name, _, buffer = key.rpartition(".")
                setattr(owners[owner_name], buffer, array)

    def checked_state_dict(self, state: dict[str, Any]) -> dict[str, Any]:
        """``state`` checked against this model, on the current backend in the model's
        dtypes, ready for ``load_state_dict``; the model itself is not changed.

        Raises:
            ValueError: listing every missing, unexpected or wrongly shaped entry.
            TypeError: for an entry that is not an array of real numbers.
        """
        where = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state, dict):
            raise TypeError(f"{where}: expected a dict of arrays, got {type(state).__name__}")
        own = self.state_dict()
        problems = [f"missing {k!r}" for k in own if k not in state]
        problems += [f"unexpected {k!r}" for k in state if k not in own]
        for key in (k for k in own if k in state):
            checks.real(state[key], where, f"entry {key!r}")
            if tuple(own[key].shape) != tuple(state[key].shape):
                problems.append(
                    f"{key!r}: expected shape {tuple(own[key].shape)}, "
                    f"got {tuple(state[key].shape)}"
                )
        if problems:
            raise ValueError(f"{where}: state does not match the model: " + "; ".join(problems))
        return {key: backend.asarray(state[key], dtype=own[key].dtype) for key in own}

    def astype(self, dtype: Any) -> Layer:
        """Cast every floating parameter and buffer to ``dtype`` (e.g. ``"float64"``)."""
        for p in self.parameters():
            p.data = backend.asarray(p.data, dtype=dtype)
            p.grad = None
        for _, layer in self.layers():
            for buffer in layer.buffers:
                value = getattr(layer, buffer)
                ns = backend.namespace(value)
                if ns.isdtype(value.dtype, "real floating"):
                    setattr(layer, buffer, backend.asarray(value, dtype=dtype))
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Sequential(Layer):
    """Layers applied in order; backward runs them in reverse.

    Args:
        *layers: the layers, first applied first.

    Parameter names are ``"<index>.<name>"`` as in PyTorch (``"0.weight"``). Where the
    backend has the fused kernel, a Conv2D -> ReLU (-> 2x2 MaxPool2D) run of layers is
    one block (``gpunet.nn.fusion``): the same numbers in fewer passes over memory.
    """

    def __init__(self, *layers: Layer):
        for index, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(
                    f"Sequential: argument {index} is {type(layer).__name__}, not a Layer"
                )
        self.layers_ = list(layers)
        self._stages: list[tuple[Any, int]] | None = None

    def children(self) -> Iterator[tuple[str, Layer]]:
        for index, layer in enumerate(self.layers_):
            yield str(index), layer

    def forward(self, x: Any) -> Any:
        from gpunet.nn import fusion  # fusion knows the layer kinds, which import this

        self._stages = fusion.stages(self.layers_, x)
        for block, index in self._stages:
            x = (block or self.layers_[index])(x)
        return x

    def backward(self, grad_out: Any) -> Any:
        # before any forward, each layer's own backward says so
        stages = self._stages or [(None, index) for index in range(len(self.layers_))]
        for block, index in reversed(stages):
            layer = self.layers_[index]
            grad_out = (block or layer).backward(grad_out)
            if grad_out is None and index > 0:
                raise ValueError(
                    f"Sequential: layer {index} ({layer!r}) returned no input gradient "
                    f"(input_grad=False), but the {index} layer(s) before it need one; "
                    f"only the first layer may skip it"
                )
        return grad_out

    def __getitem__(self, index: int) -> Layer:
        return self.layers_[index]

    def __len__(self) -> int:
        return len(self.layers_)

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers_)

    def append(self, layer: Layer) -> Sequential:
        """Add a layer at the end. Returns self."""
        self.layers_.append(layer)
        return self

    def __repr__(self) -> str:
        inner = ",\n".join(f"  ({i}): {layer!r}" for i, layer in enumerate(self.layers_))
        return f"Sequential(\n{inner}\n)"
