"""Processes and threads: fork after training, multiprocessing.Pool with fork, two threads
training at once (under any NUMBA_THREADING_LAYER) and a read-only install, each in a
subprocess with a timeout so a crash or a hang fails the test instead of the suite."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

TIMEOUT_S = 300
REPOSITORY = Path(__file__).resolve().parents[1]

# The training every child runs: a small CNN whose Dense weight is large enough (over a
# million values) that gpunet's threads take part (set_num_threads(2)) in its GEMM and
# Adam updates.
TRAINING = textwrap.dedent(
    """
    import numpy as np
    import gpunet
    from gpunet.losses import CrossEntropy
    from gpunet.nn import Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential
    from gpunet.optim import Adam

    gpunet.set_num_threads(2)

    def data():
        rng = np.random.default_rng(5)
        x = rng.normal(size=(96, 2, 12, 12)).astype(np.float32)
        return x, (x[:, 0, :4, :4].sum(axis=(1, 2)) > 0).astype(np.int64)

    def build(seed):
        gpunet.seed(seed)
        model = Sequential(Conv2D(2, 8, 3, padding=1), ReLU(), MaxPool2D(2), Flatten(),
                           Dense(8 * 6 * 6, 4096), ReLU(), Dense(4096, 2))
        return model, Adam(model.parameters(), lr=0.01)

    def train(model, optimizer):
        x, y = data()
        gpunet.fit(model, CrossEntropy(), optimizer, x, y, epochs=2, batch_size=48,
                   shuffle=False, verbose=0)
        return np.concatenate([gpunet.to_numpy(p.data).ravel() for p in model.parameters()])

    def trained(seed):
        return train(*build(seed))
    """
)


def run_child(code: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("GPUNET_")}
    environment["GPUNET_BACKEND"] = "numpy"  # fork and threads concern the CPU kernels
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-c", TRAINING + textwrap.dedent(code)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )


def test_a_child_forked_after_training_trains_correctly():
    run = run_child(
        """
        import os
        from gpunet.kernels import _parallel

        expected = trained(1)  # kernels compiled, gpunet's pool and the BLAS running
        assert _parallel._pool is not None, "the training did not use gpunet's threads"
        pid = os.fork()
        if pid == 0:
            os._exit(0 if np.array_equal(trained(1), expected) else 3)
        _, status = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(status))
        print("parent again", np.array_equal(trained(1), expected))
        """
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["child", "0", "parent", "again", "True"]


def test_a_fork_pool_returns_the_same_models_as_one_process():
    run = run_child(
        """
        import multiprocessing

        expected = [trained(seed) for seed in (1, 2, 3)]
        with multiprocessing.get_context("fork").Pool(2) as pool:
            results = pool.map(trained, [1, 2, 3])
        print([bool(np.array_equal(a, b)) for a, b in zip(results, expected)])
        """
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[True, True, True]"


@pytest.mark.parametrize("layer", [None, "workqueue", "omp"])
def test_two_threads_training_at_once_match_sequential_runs(layer):
    variables = {} if layer is None else {"NUMBA_THREADING_LAYER": layer}
    run_ = run_child(
        """
        import threading

        # Models are built in order (the initial weights come from one seeded generator);
        # the training itself draws no random numbers (shuffle=False, no dropout).
        sequential = [train(*build(seed)) for seed in (1, 2)]
        pairs = [build(seed) for seed in (1, 2)]
        results = [None, None]

        def work(index):
            results[index] = train(*pairs[index])

        threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        print([bool(np.array_equal(a, b)) for a, b in zip(results, sequential)])
        """,
        **variables,
    )
    assert run_.returncode == 0, run_.stderr
    assert run_.stdout.strip() == "[True, True]"


# --------------------------------------------------------------------------- read-only


def _read_only_runner(root: Path) -> list[str] | None:
    """A command prefix that runs a child with ``root`` read-only, or None.

    Ordinary users: the permission bits suffice. Root ignores them, so its child runs in
    a mount namespace of its own where ``root`` is a read-only bind mount.
    """
    if os.geteuid() != 0:
        subprocess.run(["chmod", "-R", "a-w", str(root)], check=True)
        return []
    if shutil.which("unshare") is None:
        return None
    mount = f'mount --bind {root} {root} && mount -o remount,bind,ro {root} && exec "$@"'
    probe = ["unshare", "--mount", "--propagation", "private", "sh", "-c", mount, "-", "true"]
    if subprocess.run(probe, capture_output=True, timeout=60).returncode != 0:
        return None
    return probe[:-1]


def test_a_read_only_install_compiles_its_kernels_and_says_so(tmp_path):
    root = tmp_path / "install"
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(REPOSITORY / "gpunet", root / "gpunet", ignore=ignore)
    shutil.copytree(REPOSITORY / "kernels", root / "gpunet" / "kernels", ignore=ignore)
    (root / "home").mkdir()
    runner = _read_only_runner(root)
    if runner is None:
        pytest.skip("running as root without mount rights: no read-only directory to test in")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GPUNET_", "NUMBA_"))}
    env.update(HOME=str(root / "home"), PYTHONPATH=str(root), GPUNET_BACKEND="numpy")
    env.pop("XDG_CACHE_HOME", None)
    script = textwrap.dedent(
        f"""
        import os
        import numpy as np
        import gpunet
        from gpunet.kernels import _jit
        from gpunet.nn import AvgPool2D, Conv2D, MaxPool2D, Parameter, ReLU
        from gpunet.optim import SGD, Adam

        assert gpunet.__file__.startswith({str(root)!r}), gpunet.__file__
        assert gpunet.kernels.__file__.startswith({str(root)!r}), gpunet.kernels.__file__
        assert not os.access({str(root)!r}, os.W_OK)
        p = Parameter(gpunet.asarray([1.0, 2.0]))
        for optimizer in (SGD([p], lr=0.5), Adam([p], lr=0.5)):
            p.grad = gpunet.asarray([1.0, 1.0])
            optimizer.step()  # the first step compiles the update kernel
        x = gpunet.asarray(np.random.default_rng(0).normal(size=(2, 2, 6, 6)))
        for layer in (Conv2D(2, 3, 3, padding=1), MaxPool2D(2), AvgPool2D(3), ReLU()):
            y = layer(x)
            layer.backward(y * 0 + 1)
        print(gpunet.to_numpy(p.data).round(4).tolist())
        print(_jit.cache_report())
        """
    )
    run = subprocess.run(
        [*runner, sys.executable, "-c", script],
        env=env,
        cwd=root / "home",  # not the repository, whose gpunet would come first
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert run.returncode == 0, run.stderr
    weights, report = run.stdout.strip().splitlines()
    assert weights == "[0.0, 1.0]"  # SGD: 1 - 0.5, 2 - 0.5; Adam: another 0.5 each
    assert "NOT cached (no writable cache folder" in report
    assert "cached on disk" not in report
    info = subprocess.run(
        [*runner, sys.executable, "-m", "gpunet", "info"],
        env=env,
        cwd=root / "home",
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert info.returncode == 0, info.stderr
    line = next(row for row in info.stdout.splitlines() if row.startswith("numba cache:"))
    assert "NOT cached" in line and "cached on disk" not in line, line
