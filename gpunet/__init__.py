"""gpunet: deep learning on plain arrays, NumPy on any CPU and CuPy on NVIDIA GPUs.

    import gpunet
    from gpunet.nn import Sequential, Dense, Tanh, Sigmoid

    gpunet.seed(0)
    model = Sequential(Dense(2, 8), Tanh(), Dense(8, 1), Sigmoid())

The backend is chosen by ``GPUNET_BACKEND`` (numpy, cupy, array_api_strict, auto); see
``gpunet.backend``. Importing gpunet changes nothing outside it: no environment
variables, no BLAS or allocator settings. On the CPU, gpunet runs its kernels on its own
threads (``set_num_threads``) and holds the BLAS to one thread only while they run.
"""

from gpunet import backend, data, init, losses, nn, optim, plot, regularizers
from gpunet.backend import asarray, seed, to_numpy
from gpunet.gradient_check import GradcheckResult, gradcheck
from gpunet.io import load, save
from gpunet.kernels._parallel import set_num_threads
from gpunet.training import History, evaluate, fit, predict

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
    "set_num_threads",
]
