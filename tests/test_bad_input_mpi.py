"""Under ``mpirun -n 2``, any way a rank ends early ends the whole job within seconds with a
message naming the rank, and ranks holding unequal data get a clear error before the
first step.

Each test starts ``mpirun`` in a subprocess with a timeout (a hang fails the test); this
file is also the script every rank runs (``python tests/test_bad_input_mpi.py MODE``).
"""

from __future__ import annotations

import os
import re
import sys
import time

import numpy as np
import pytest
from test_distributed_mpi import MPI_TESTS, mpirun

# From the moment rank 1 leaves to the end of mpirun; the job itself takes seconds.
ENDS_WITHIN_S = 30

pytestmark = MPI_TESTS


def _run(mode: str) -> tuple[str, float, int]:
    """mpirun's output, the seconds from rank 1's leaving to the job's end, and its code."""
    run = mpirun(__file__, mode)
    finished = time.time()
    output = run.stdout + run.stderr
    left = re.search(r"rank 1 leaves at (\d+\.\d+)", output)
    return output, (finished - float(left.group(1))) if left else 0.0, run.returncode


@pytest.mark.parametrize("mode", ["sys.exit(3)", "sys.exit(0)", "return"])
def test_a_rank_that_exits_ends_the_job_naming_it(mode):
    output, latency, code = _run(mode)
    assert code != 0, output
    assert (
        "gpunet.distributed: rank 1 ended (sys.exit or the end of its script) while rank 0 "
        "waits for it in the gradient allreduce; aborting the MPI job" in output
    ), output
    assert "rank 0 finished" not in output
    assert latency < ENDS_WITHIN_S, output


@pytest.mark.parametrize(
    ("mode", "named"),
    [
        ("os._exit(3)", r"@\d+,1\]\s+Exit code:\s+3"),  # Open MPI's name for rank 1
        ("os._exit(0)", r"process rank 1 with PID \d+ .* exiting\s+improperly"),
        ("SIGKILL", r"process rank 1 with PID \d+ on node \S+ exited on\s+signal 9"),
        ("SIGTERM", r"process rank 1 with PID \d+ on node \S+ exited on\s+signal 15"),
    ],
)
def test_a_rank_that_dies_ends_the_job_naming_it(mode, named):
    output, latency, code = _run(mode)
    assert code != 0, output
    assert re.search(named, output, re.DOTALL), output
    assert "rank 0 finished" not in output
    assert latency < ENDS_WITHIN_S, output


def test_ranks_with_unequal_data_get_a_clear_error_before_the_first_step():
    output, _, code = _run("unequal")
    assert code != 0, output
    assert (
        "ValueError: fit: the ranks hold different data (rank 0: {'x': (256, 6), 'y': "
        "(256, 1)}; rank 1: {'x': (200, 6), 'y': (200, 1)}); every rank must hold the same data"
    ) in output, output
    assert "IndexError" not in output
    assert "step 1 done" not in output


def test_ranks_with_equal_data_still_train_and_end_normally():
    output, _, code = _run("equal")
    assert code == 0, output
    assert output.count("finished with loss") == 2


# --------------------------------------------------------------------------- the rank's script


def _leave(mode: str) -> None:
    import signal

    print(f"rank 1 leaves at {time.time():.3f}", flush=True)
    if mode == "sys.exit(3)":
        sys.exit(3)
    if mode == "sys.exit(0)":
        sys.exit(0)
    if mode == "os._exit(3)":
        os._exit(3)
    if mode == "os._exit(0)":
        os._exit(0)
    os.kill(os.getpid(), getattr(signal, mode))


def _main(mode: str) -> None:
    import gpunet
    from gpunet import distributed
    from gpunet.losses import MSE
    from gpunet.nn import Dense, Sequential, Tanh
    from gpunet.optim import SGD

    distributed.init()
    rank = distributed.rank()
    gpunet.seed(0)
    model = Sequential(Dense(6, 8), Tanh(), Dense(8, 1))
    optimizer = distributed.DistributedOptimizer(SGD(model.parameters(), lr=0.1))
    rng = np.random.default_rng(0)
    n = 200 if (mode == "unequal" and rank == 1) else 256
    x = rng.normal(size=(n, 6)).astype(np.float32)
    y = x[:, :1] * 0.5

    class Steps(gpunet.callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            print(f"rank {rank} step {batch + 1} done", flush=True)

    if mode in ("unequal", "equal"):
        history = gpunet.fit(
            model, MSE(), optimizer, x, y, epochs=2, batch_size=64, verbose=0, metrics=(),
            callbacks=[Steps()],
        )  # fmt: skip
        print(f"rank {rank} finished with loss {history['loss'][-1]:.4f}", flush=True)
        return
    loss_fn = MSE()
    xb, yb = gpunet.asarray(x[:32]), gpunet.asarray(y[:32])
    for step in range(50):
        if rank == 1 and step == 3:
            if mode == "return":
                print(f"rank 1 leaves at {time.time():.3f}", flush=True)
                return  # the end of the script, while rank 0 trains on
            _leave(mode)
        optimizer.zero_grad()
        loss_fn(model(xb), yb)
        model.backward(loss_fn.backward())
        optimizer.step()
        time.sleep(0.01)
    print("rank 0 finished", flush=True)


if __name__ == "__main__":
    _main(sys.argv[1])
