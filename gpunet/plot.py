"""Plots of training: ``gpunet.plot.history(history, path)`` writes the learning curves.

matplotlib is optional (``pip install 'gpunet[examples]'``); it is imported only when a
plot is drawn, and never through pyplot, so plotting changes no global state.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

# Logged numbers that are not learning curves.
_NOT_CURVES = ("lr",)


def history(
    history: Any, path: str | os.PathLike, *, title: str | None = None, dpi: int = 100
) -> str:
    """Write a PNG of the loss and metric curves, training and validation, per epoch.

    One panel per quantity (``loss`` first, then each metric); a ``val_*`` curve is drawn
    dashed in the panel of its training curve.

    Args:
        history: a ``gpunet.History`` (as returned by ``fit``) or a mapping
            ``{name: [value per epoch]}``.
        path: the PNG file to write.
        title: a title over the panels (default None).
        dpi: resolution (default 100).

    Returns:
        The path written.

    Raises:
        ImportError: if matplotlib is not installed (with the command that installs it).
        ValueError: if the history holds no epochs.
    """
    curves, epochs = _curves(history)
    figure_class = _matplotlib_figure()
    panels = [name for name in curves if not name.startswith("val_")]
    panels += [name[4:] for name in curves if name.startswith("val_") and name[4:] not in curves]
    figure = figure_class(figsize=(4.5 * len(panels), 3.6), dpi=dpi, layout="constrained")
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for ax, name in zip(axes, panels, strict=True):
        if name in curves:
            ax.plot(epochs, curves[name], marker=".", label=f"train {name}")
        if f"val_{name}" in curves:
            ax.plot(epochs, curves[f"val_{name}"], "--", marker=".", label=f"validation {name}")
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)  # no ticks between epochs
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        figure.suptitle(title)
    path = os.fspath(path)
    figure.savefig(path, format="png")
    return path


def _curves(history: Any) -> tuple[dict[str, Sequence[float]], list[int]]:
    if hasattr(history, "history") and hasattr(history, "epoch"):
        data, epochs = history.history, [epoch + 1 for epoch in history.epoch]
    elif isinstance(history, Mapping):
        data = dict(history)
        length = max((len(values) for values in data.values()), default=0)
        epochs = list(range(1, length + 1))
    else:
        raise TypeError(
            f"gpunet.plot.history: expected a History or a dict of lists, got "
            f"{type(history).__name__}"
        )
    curves = {name: list(values) for name, values in data.items() if name not in _NOT_CURVES}
    if not epochs or not curves:
        raise ValueError("gpunet.plot.history: the history holds no epochs to plot")
    for name, values in curves.items():
        if len(values) != len(epochs):
            raise ValueError(
                f"gpunet.plot.history: {name!r} has {len(values)} values for {len(epochs)} epochs"
            )
    return curves, epochs


def _matplotlib_figure() -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError(
            "gpunet.plot needs matplotlib, an optional dependency: "
            "pip install 'gpunet[examples]' (or pip install matplotlib)"
        ) from err
    return Figure
