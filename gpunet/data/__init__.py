"""Data handling: batching for the three modes of gradient descent."""

from gpunet.data.batches import batches, epoch_order, take_rows

__all__ = ["batches", "epoch_order", "take_rows"]
