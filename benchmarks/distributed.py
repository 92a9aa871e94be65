"""Data-parallel step time: the same global batch on 1 or N ranks.

Run it under mpirun with 1, 2, ... ranks and compare the lines it prints (rank 0
prints one JSON line per workload)::

    OMP_NUM_THREADS=1 mpirun -n 1 python benchmarks/distributed.py
    OMP_NUM_THREADS=1 mpirun -n 2 --oversubscribe python benchmarks/distributed.py
    GPUNET_BACKEND=cupy mpirun -n 4 python benchmarks/distributed.py --batch 1024

Each rank runs ``batch / ranks`` samples per step (strong scaling: the global batch is
fixed). Reported: the median step time over ``--rounds`` rounds of ``--steps`` steps
(the slowest rank's, since the step ends when the allreduce does), the part of it
spent averaging gradients, and the bytes each rank hands to allreduce per step.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

import gpunet
from gpunet import backend, distributed
from gpunet.losses import CrossEntropy
from gpunet.nn import Dense, ReLU, Sequential
from gpunet.optim import SGD


def w1_model() -> tuple[object, tuple[int, ...]]:
    """W1: MLP 784-256-128-10, SGD; input (batch, 784)."""
    return Sequential(Dense(784, 256), ReLU(), Dense(256, 128), ReLU(), Dense(128, 10)), (784,)


def w2_model() -> tuple[object, tuple[int, ...]]:
    """W2: the CNN of benchmarks/w2_cnn.py; input (batch, 1, 28, 28)."""
    from gpunet.nn import Conv2D, Flatten, MaxPool2D

    model = Sequential(
        Conv2D(1, 16, 5, padding=2), ReLU(), MaxPool2D(2),
        Conv2D(16, 32, 5, padding=2), ReLU(), MaxPool2D(2),
        Flatten(), Dense(1568, 128), ReLU(), Dense(128, 10),
    )  # fmt: skip
    return model, (1, 28, 28)


WORKLOADS = {"W1": w1_model, "W2": w2_model}


def _sync() -> None:
    if backend.name() == "cupy":
        import cupy

        cupy.cuda.get_current_stream().synchronize()


def measure(name: str, global_batch: int, steps: int, rounds: int) -> dict:
    group = distributed.init()
    gpunet.seed(0)
    model, sample_shape = WORKLOADS[name]()
    distributed.broadcast_parameters(model)
    optimizer = distributed.DistributedOptimizer(SGD(model.parameters(), lr=0.01))
    local = distributed.local_batch_size(global_batch)
    rng = np.random.default_rng(group.rank)
    x = gpunet.asarray(rng.standard_normal((local, *sample_shape)).astype(np.float32))
    y = gpunet.asarray(rng.integers(0, 10, size=local))
    loss_fn = CrossEntropy()
    averaging = [0.0]

    def step() -> None:
        optimizer.zero_grad()
        loss_fn(model(x), y)
        model.backward(loss_fn.backward())
        _sync()
        start = time.perf_counter()
        optimizer.average_gradients()
        _sync()
        averaging[0] += time.perf_counter() - start
        optimizer.optimizer.step()
        _sync()

    for _ in range(3):
        step()
    step_times, average_times = [], []
    for _ in range(rounds):
        group.comm.Barrier()
        averaging[0] = 0.0
        start = time.perf_counter()
        for _ in range(steps):
            step()
        elapsed = time.perf_counter() - start
        # The slowest rank sets the pace.
        step_times.append(group.comm.allreduce(elapsed, op=_max()) / steps)
        average_times.append(group.comm.allreduce(averaging[0], op=_max()) / steps)
    step_s = statistics.median(step_times)
    return {
        "workload": name,
        "backend": backend.name(),
        "transport": group.transport.name,
        "ranks": group.size,
        "global_batch": global_batch,
        "local_batch": local,
        "step_ms": round(1e3 * step_s, 3),
        "allreduce_ms": round(1e3 * statistics.median(average_times), 3),
        "bytes_per_step": optimizer.bytes_per_step,
        "calls_per_step": optimizer.calls_per_step,
        "samples_per_s": round(global_batch / step_s, 1),
    }


def _max():
    from mpi4py import MPI

    return MPI.MAX


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default="W1,W2", help="comma-separated: W1, W2")
    parser.add_argument("--batch", type=int, default=64, help="global batch (default 64)")
    parser.add_argument("--steps", type=int, default=20, help="steps per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    for name in args.workloads.split(","):
        result = measure(name.strip(), args.batch, args.steps, args.rounds)
        if distributed.is_main():
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
