"""gpunet.plot.history: learning curves as a PNG; matplotlib optional."""

from __future__ import annotations

import sys

import pytest

import gpunet
from gpunet.training import History


def recorded_history():
    history = History()
    for epoch, (loss, accuracy) in enumerate([(1.0, 0.5), (0.6, 0.7), (0.4, 0.8)]):
        history.on_epoch_end(
            epoch,
            {
                "loss": loss,
                "accuracy": accuracy,
                "val_loss": loss + 0.1,
                "val_accuracy": accuracy - 0.05,
                "lr": 0.1,
            },
        )
    return history


def test_history_plot_writes_a_png_with_a_panel_per_quantity(tmp_path):
    image = pytest.importorskip("matplotlib.image")
    path = gpunet.plot.history(recorded_history(), tmp_path / "curves.png", title="run")
    assert path == str(tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width = image.imread(path).shape[:2]
    assert (width, height) == (900, 360)  # two panels (loss, accuracy); lr is not a curve


def test_history_plot_takes_a_dict(tmp_path):
    image = pytest.importorskip("matplotlib.image")
    path = gpunet.plot.history({"loss": [3.0, 2.0, 1.0]}, tmp_path / "loss.png", dpi=50)
    height, width = image.imread(path).shape[:2]
    assert (width, height) == (225, 180)


def test_bad_histories_raise(tmp_path):
    with pytest.raises(ValueError, match="gpunet.plot.history: the history holds no epochs"):
        gpunet.plot.history(History(), tmp_path / "empty.png")
    with pytest.raises(ValueError, match="'val_loss' has 1 values for 2 epochs"):
        gpunet.plot.history({"loss": [1.0, 0.5], "val_loss": [1.0]}, tmp_path / "x.png")
    with pytest.raises(TypeError, match="expected a History or a dict of lists, got list"):
        gpunet.plot.history([1.0, 0.5], tmp_path / "x.png")
    assert not list(tmp_path.iterdir())


def test_missing_matplotlib_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(
        ImportError, match=r"gpunet.plot needs matplotlib.*pip install 'gpunet\[examples\]'"
    ):
        gpunet.plot.history(recorded_history(), tmp_path / "curves.png")
