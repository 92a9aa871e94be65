"""Layer, the unit networks are built from, and Sequential."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from gpunet import backend
from gpunet.nn.parameter import Parameter


class Layer:
    """Base class of every layer.

    A layer computes ``forward(x)`` (also ``layer(x)``), caches what its backward pass
    needs, and in ``backward(grad_out)`` returns the gradient with respect to its input
    while ADDING the gradients of its parameters to their ``.grad``.

    Parameters are found by walking the layer's attributes in the order they were set:
    ``Parameter`` attributes, sub-layers, and lists or tuples of sub-layers. Non-learned
    state that belongs in checkpoints (running statistics) is named in ``buffers``.
    """

    buffers: tuple[str, ...] = ()
    training: bool = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def forward(self, x: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define forward")

    def backward(self, grad_out: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define backward")

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

        Raises:
            ValueError: listing every missing, unexpected or wrongly shaped entry.
        """
        own = self.state_dict()
        problems = [f"missing {k!r}" for k in own if k not in state]
        problems += [f"unexpected {k!r}" for k in state if k not in own]
        problems += [
            f"{k!r}: expected shape {tuple(own[k].shape)}, got {tuple(state[k].shape)}"
            for k in own
            if k in state and tuple(own[k].shape) != tuple(state[k].shape)
        ]
        if problems:
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: state does not match the model: "
                + "; ".join(problems)
            )
        params = dict(self.named_parameters())
        for key, value in state.items():
            array = backend.asarray(value, dtype=own[key].dtype)
            if key in params:
                params[key].data = array
            else:
                owner_name, _, buffer = key.rpartition(".")
                owner = dict(self.layers())[owner_name]
                setattr(owner, buffer, array)

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
        for stage, _ in self._stages:
            x = stage(x)
        return x

    def backward(self, grad_out: Any) -> Any:
        if self._stages is None:
            raise RuntimeError("Sequential.backward: called before forward")
        for stage, index in reversed(self._stages):
            layer = self.layers_[index]
            grad_out = stage.backward(grad_out)
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
