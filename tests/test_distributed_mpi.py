"""Data-parallel training under ``mpirun -n 2`` on the CPU.

The test functions start ``mpirun`` in a subprocess (with a timeout, so a hang fails
instead of blocking the suite); the same file is the script every rank runs
(``python tests/test_distributed_mpi.py MODE OUT``). Skipped, with the reason, where
mpi4py or ``mpirun`` is missing (``pip install 'gpunet[distributed]'``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

RANKS = 2
GLOBAL_BATCH = 64
STEPS = 10
TIMEOUT_S = 120


def launcher_problem() -> str | None:
    """Why two-rank runs cannot start here, or None."""
    if importlib.util.find_spec("mpi4py") is None:
        return "mpi4py is not installed (pip install 'gpunet[distributed]')"
    if shutil.which("mpirun") is None:
        return "mpirun is not on PATH (pip install 'gpunet[distributed]' installs Open MPI)"
    return None


def mpirun(script: str, *args: str) -> subprocess.CompletedProcess:
    """``mpirun -n RANKS python script *args``, its output captured, within TIMEOUT_S."""
    env = dict(os.environ)
    # Open MPI refuses root without these; two cores may hold fewer slots than ranks.
    env.update(
        OMPI_ALLOW_RUN_AS_ROOT="1",
        OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
        OMPI_MCA_rmaps_base_oversubscribe="1",
        PRTE_MCA_rmaps_default_mapping_policy=":oversubscribe",
        OMP_NUM_THREADS="1",
    )
    command = ["mpirun", "-n", str(RANKS), sys.executable, script, *args]
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
    )


# The marks of every two-rank test module.
MPI_TESTS = [
    pytest.mark.skipif(launcher_problem() is not None, reason=str(launcher_problem())),
    pytest.mark.skipif(
        os.environ.get("GPUNET_BACKEND", "numpy") == "cupy",
        reason="two ranks on the CPU; NCCL needs one GPU per rank (one GPU cannot host two)",
    ),
]
pytestmark = MPI_TESTS


def _mpirun(mode: str, out: Path) -> subprocess.CompletedProcess:
    return mpirun(__file__, mode, str(out))


@pytest.mark.parametrize("mode", ["steps", "fit"])
def test_two_ranks_train_like_one_process(mode, tmp_path):
    out = tmp_path / "result.json"
    run = _mpirun(mode, out)
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(out.read_text())
    assert result["world_size"] == RANKS
    assert result["steps"] == STEPS
    # Both ranks end with the same weights, equal to one process on the same batches.
    assert result["max_diff_between_ranks"] == 0.0
    assert result["max_diff_to_single_process"] < 1e-6
    # The weights moved: equality is not the trivial one of an untrained model.
    assert result["max_change"] > 1e-2
    assert result["bytes_per_step"] == result["parameter_bytes"]


def test_a_rank_that_raises_ends_the_job(tmp_path):
    run = _mpirun("raise", tmp_path / "unused.json")
    output = run.stdout + run.stderr
    assert run.returncode != 0, output
    assert "RuntimeError: rank 1 fails at step 3 on purpose" in output
    assert "gpunet.distributed: rank 1 raised RuntimeError; aborting the MPI job" in output
    assert "rank 0 finished" not in output


# --------------------------------------------------------------------------- the rank's script


def _model():
    from gpunet.nn import Dense, Sequential, Tanh

    return Sequential(Dense(12, 16), Tanh(), Dense(16, 3)).astype("float64")


def _data():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(STEPS * GLOBAL_BATCH, 12))
    y = (x[:, :3].sum(axis=1) > 0).astype(np.int64) + (x[:, 3] > 1).astype(np.int64)
    return x, y


def _train_steps(model, optimizer, x, y, order, batch):
    from gpunet import losses
    from gpunet.data import take_rows

    loss_fn = losses.CrossEntropy()
    for start in range(0, len(order), batch):
        index = order[start : start + batch]
        xb, yb = take_rows(x, index, "float64"), take_rows(y, index)
        optimizer.zero_grad()
        loss_fn(model(xb), yb)
        model.backward(loss_fn.backward())
        optimizer.step()


def _weights(model):
    from gpunet import to_numpy

    return np.concatenate([to_numpy(p.data).ravel() for p in model.parameters()])


def _single_process(train):
    """Run ``train()`` as if there were one process (the reference)."""
    from gpunet.distributed import state

    group = state._communicator
    state.install(None)
    try:
        return train()
    finally:
        state.install(group)


def _main(mode: str, out: str) -> None:
    import gpunet
    from gpunet import distributed
    from gpunet.optim import SGD
    from gpunet.training import fit

    distributed.init()
    rank, size = distributed.rank(), distributed.world_size()
    x, y = _data()
    gpunet.seed(100 + rank)  # different initial weights on purpose: broadcast must fix them
    model = _model()
    distributed.broadcast_parameters(model)
    start = _weights(model)
    optimizer = distributed.DistributedOptimizer(SGD(model.parameters(), lr=0.5))
    # Each rank draws its own order; shard() uses rank 0's.
    order = np.random.default_rng(7 + rank).permutation(len(x))
    local = distributed.local_batch_size(GLOBAL_BATCH)
    if mode == "raise":
        for step in range(STEPS):
            if rank == 1 and step == 3:
                raise RuntimeError("rank 1 fails at step 3 on purpose")
            _train_steps(model, optimizer, x, y, distributed.shard(order)[:local], local)
        print("rank 0 finished", flush=True)
        return
    if mode == "steps":
        _train_steps(model, optimizer, x, y, distributed.shard(order), local)
    else:
        gpunet.seed(11)  # fit draws its order from the seeded host generator of rank 0
        # batch_size is the global batch: fit runs its share, GLOBAL_BATCH / size, per rank
        fit(
            model, gpunet.losses.CrossEntropy(), optimizer, x, y,
            epochs=1, batch_size=GLOBAL_BATCH, verbose=0, metrics=(),
        )  # fmt: skip
    final = _weights(model)
    everyone = distributed.state.current("test").comm.allgather(final)
    if rank != 0:
        return

    def reference():
        gpunet.seed(100)
        single = _model()
        sgd = SGD(single.parameters(), lr=0.5)
        if mode == "steps":
            _train_steps(single, sgd, x, y, np.random.default_rng(7).permutation(len(x)), 64)
        else:
            gpunet.seed(11)
            fit(
                single, gpunet.losses.CrossEntropy(), sgd, x, y,
                epochs=1, batch_size=GLOBAL_BATCH, verbose=0, metrics=(),
            )  # fmt: skip
        return _weights(single)

    expected = _single_process(reference)
    result = {
        "world_size": size,
        "steps": optimizer.step_count,
        "max_diff_between_ranks": float(max(np.abs(w - final).max() for w in everyone)),
        "max_diff_to_single_process": float(np.abs(final - expected).max()),
        "max_change": float(np.abs(final - start).max()),
        "bytes_per_step": optimizer.bytes_per_step,
        "parameter_bytes": int(final.size * 8),
    }
    Path(out).write_text(json.dumps(result))


if __name__ == "__main__":
    _main(sys.argv[1], sys.argv[2])
