"""Callbacks for ``gpunet.fit``."""

from gpunet.callbacks.base import Callback

__all__ = ["Callback"]
