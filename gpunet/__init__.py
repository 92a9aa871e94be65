"""gpunet: deep learning on plain arrays, NumPy on any CPU and CuPy on NVIDIA GPUs.

    import gpunet
    from gpunet.nn import Sequential, Dense, Tanh, Sigmoid

    gpunet.seed(0)
    model = Sequential(Dense(2, 8), Tanh(), Dense(8, 1), Sigmoid())

The backend is chosen by ``GPUNET_BACKEND`` (numpy, cupy, array_api_strict, auto); see
``gpunet.backend``.
"""

from gpunet.kernels import _threads

# Before anything loads NumPy or an OpenMP runtime: the idle threads of OpenBLAS and of
# Numba's pool then sleep rather than spin while the other pool or gpunet's own kernels
# run (kernels/_threads.py and kernels/_blas.py say why and what it measured). Values
# already in the environment are kept.
_threads.prepare()

from gpunet import _malloc, backend, data, init, losses, nn, optim, plot, regularizers
from gpunet.backend import asarray, seed, to_numpy
from gpunet.gradient_check import GradcheckResult, gradcheck
from gpunet.io import load, save
from gpunet.kernels._blas import quieten as _quieten_blas
from gpunet.training import History, evaluate, fit, predict

_quieten_blas()  # where NumPy loaded OpenBLAS before gpunet, it takes the setting now
_malloc.tune()  # freed arrays' memory stays for the next step (gpunet/_malloc.py)

__version__ = "0.1.0"

__all__ = [
    "GradcheckResult",
    "History",
    "__version__",
    "asarray",
    "backend",
    "data",
    "gradcheck",
    "init",
    "losses",
    "nn",
    "optim",
    "regularizers",
    "seed",
    "to_numpy",
    "evaluate",
    "fit",
    "load",
    "plot",
    "predict",
    "save",
]
