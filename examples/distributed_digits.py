"""Data-parallel training of a digit classifier: the same script on 1 or N processes.

Every rank holds the whole model; each trains on its share of every global batch, the
gradients are averaged over the ranks (one bucketed allreduce per step), so the job
takes the same steps as one process with the same global batch. Rank 0 prints and
writes the plot.

    python examples/distributed_digits.py --quick          # one process, no MPI needed
    mpirun -n 2 python examples/distributed_digits.py      # two processes (add
        --allow-run-as-root as root, --oversubscribe with fewer cores than ranks)
    GPUNET_BACKEND=cupy mpirun -n 4 python examples/distributed_digits.py  # 4 GPUs, NCCL
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

import numpy as np

import gpunet
from gpunet import distributed
from gpunet.losses import CrossEntropy
from gpunet.nn import Dense, ReLU, Sequential
from gpunet.optim import SGD
from gpunet.training import evaluate, fit


def load_digits() -> tuple[np.ndarray, ...]:
    """The 8x8 digits of scikit-learn, scaled to [0, 1], split 1497 train / 300 test."""
    from sklearn.datasets import load_digits as sklearn_digits

    data = sklearn_digits()
    x = (data.data / 16.0).astype(np.float32)
    y = data.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(x))  # the same split on every rank
    x, y = x[order], y[order]
    return x[300:], y[300:], x[:300], y[:300]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few epochs only")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=64, help="the global batch")
    parser.add_argument("--out", default="out", help="directory for the plot")
    args = parser.parse_args()
    epochs = 8 if args.quick else args.epochs

    # Without mpi4py there is no job to join: train as the one and only process.
    if importlib.util.find_spec("mpi4py") is not None:
        distributed.init()
        size, main_rank = distributed.world_size(), distributed.is_main()
    else:
        size, main_rank = 1, True
    gpunet.seed(0)
    x_train, y_train, x_test, y_test = load_digits()
    model = Sequential(Dense(64, 128), ReLU(), Dense(128, 10))
    optimizer = SGD(model.parameters(), lr=0.2)
    if distributed.is_initialized():
        distributed.broadcast_parameters(model)
        optimizer = distributed.DistributedOptimizer(optimizer)

    start = time.perf_counter()
    history = fit(
        model, CrossEntropy(), optimizer, x_train, y_train,
        epochs=epochs, batch_size=args.batch_size, verbose=0,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    test = evaluate(model, CrossEntropy(), x_test, y_test)
    if main_rank:
        sent = getattr(optimizer, "bytes_per_step", 0)
        print(f"ranks: {size}, global batch {args.batch_size} ({args.batch_size // size} per rank)")
        print(
            f"allreduce per step: {sent} bytes in {getattr(optimizer, 'calls_per_step', 0)} call(s)"
        )
        print(
            f"train loss: {history['loss'][-1]:.4f}, train accuracy: {history['accuracy'][-1]:.4f}"
        )
        print(f"test accuracy: {test['accuracy']:.4f}")
        print(f"time: {seconds:.2f} s for {epochs} epochs")
        plot(history, Path(args.out), size)


def plot(history, out: Path, size: int) -> None:
    """Loss and accuracy per epoch, to ``out/distributed_digits.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    left.plot(history["loss"])
    left.set(xlabel="epoch", ylabel="training loss (mean over ranks)")
    right.plot(history["accuracy"])
    right.set(xlabel="epoch", ylabel="training accuracy")
    fig.suptitle(f"digits, data-parallel over {size} process(es)")
    fig.tight_layout()
    fig.savefig(out / "distributed_digits.png", dpi=100)
    plt.close(fig)
    print(f"wrote {out / 'distributed_digits.png'}")


if __name__ == "__main__":
    main()
