"""Training: ``fit``, ``evaluate``, ``predict``, the ``History`` they record, and metrics."""

from gpunet.training.fit import Trainer, evaluate, fit, predict
from gpunet.training.history import History
from gpunet.training.metrics import accuracy

__all__ = ["History", "Trainer", "accuracy", "evaluate", "fit", "predict"]
