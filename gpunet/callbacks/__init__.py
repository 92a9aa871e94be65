"""Callbacks for ``gpunet.fit``."""

from gpunet.callbacks.base import Callback
from gpunet.callbacks.csv_logger import CSVLogger
from gpunet.callbacks.early_stopping import EarlyStopping
from gpunet.callbacks.gradient_monitor import GradientMonitor
from gpunet.callbacks.lr_scheduler import LearningRateScheduler
from gpunet.callbacks.model_checkpoint import ModelCheckpoint
from gpunet.callbacks.terminate_on_nan import TerminateOnNaN

__all__ = [
    "CSVLogger",
    "Callback",
    "EarlyStopping",
    "GradientMonitor",
    "LearningRateScheduler",
    "ModelCheckpoint",
    "TerminateOnNaN",
]
