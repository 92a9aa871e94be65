"""Data-parallel training of a digit classifier: the same script on 1 or N processes.

Every rank holds the whole model; each trains on its share of every global batch, the
gradients are averaged over the ranks (one bucketed allreduce per step), so the job
takes the same steps as one process with the same global batch. Rank 0 prints and
writes the plot.

    python examples/distributed_digits.py --quick          # one process, no MPI needed
    python examples/distributed_digits.py [--quick] [--out out] [--seed 0] [--epochs 40]
    mpirun -n 2 python examples/distributed_digits.py      # two processes (add
        --allow-run-as-root as root, --oversubscribe with fewer cores than ranks)
    GPUNET_BACKEND=cupy mpirun -n 4 python examples/distributed_digits.py  # 4 GPUs, NCCL
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from common import command_line, figure, parse, report, save

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


def main(argv: Sequence[str] | None = None) -> None:
    parser = command_line(__doc__, "8 epochs instead of --epochs")
    parser.add_argument("--epochs", type=int, default=40, help="epochs of the full run")
    parser.add_argument("--batch-size", type=int, default=64, help="the global batch")
    args = parse(parser, argv)
    epochs = 8 if args.quick else args.epochs

    # Without mpi4py there is no job to join: train as the one and only process.
    if importlib.util.find_spec("mpi4py") is not None:
        distributed.init()
        size, main_rank = distributed.world_size(), distributed.is_main()
    else:
        size, main_rank = 1, True
    gpunet.seed(args.seed)
    x_train, y_train, x_test, y_test = load_digits()
    model = Sequential(Dense(64, 128), ReLU(), Dense(128, 10))
    optimizer = SGD(model.parameters(), lr=0.2)
    if distributed.is_initialized():
        distributed.broadcast_parameters(model)
        optimizer = distributed.DistributedOptimizer(optimizer)

    start = time.perf_counter()
    history = fit(
        model,
        CrossEntropy(),
        optimizer,
        x_train,
        y_train,
        epochs=epochs,
        batch_size=args.batch_size,
        verbose=0,
    )
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
        print(f"time: {seconds:.2f} s for {epochs} epochs (compiling included)")
        plot(history, args.out, size)
        report(
            ranks=size,
            test_accuracy=test["accuracy"],
            train_loss=history["loss"][-1],
            allreduce_bytes_per_step=sent,
        )


def plot(history, out: Path, size: int) -> Path:
    """Loss and accuracy per epoch, to ``out/distributed_digits.png``."""
    fig = figure(9, 3.5)
    left, right = fig.subplots(1, 2)
    epochs = np.arange(1, len(history["loss"]) + 1)
    left.plot(epochs, history["loss"], marker=".")
    left.set(xlabel="epoch", ylabel="training loss (mean over ranks)")
    right.plot(epochs, history["accuracy"], marker=".")
    right.set(xlabel="epoch", ylabel="training accuracy")
    for ax in (left, right):
        ax.xaxis.get_major_locator().set_params(integer=True)
    ranks = "one process" if size == 1 else f"{size} processes"
    fig.suptitle(f"digits, data-parallel over {ranks}")
    return save(fig, out, "distributed_digits.png", dpi=100)


if __name__ == "__main__":
    main()
