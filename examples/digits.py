"""The digits data of the gpunet examples: scikit-learn's 8x8 digits (shipped inside
scikit-learn, no download), pixels scaled to [0, 1], and the one split every example uses:
``train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)``."""

from __future__ import annotations

import numpy as np


def load_split(images: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, x_test, y_train, y_test)``; x as (N, 64) rows, or (N, 1, 8, 8) images."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    if images:
        x = x.reshape(-1, 1, 8, 8)
    return train_test_split(x, y, test_size=0.25, stratify=y, random_state=0)
