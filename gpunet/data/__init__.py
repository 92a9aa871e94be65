"""Data handling: batching for the three modes of gradient descent, augmentation."""

from gpunet.data import augment
from gpunet.data.batches import batches, epoch_order, take_rows

__all__ = ["augment", "batches", "epoch_order", "take_rows"]
