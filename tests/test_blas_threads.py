"""The idle-thread settings, and the convolution's blocks on several threads.

``import gpunet`` before NumPy shortens OpenBLAS's idle spin and asks the OpenMP runtime
behind Numba's threads to wait passively; only then do the CPU convolution's blocks run
in shares on several threads, which must give the numbers of one thread, and recurrent
cells on Numba's threads between their GEMMs.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from gpunet.kernels import _blas, _shares, _threads
from gpunet.kernels import conv as kernels

numpy_session = pytest.mark.skipif(
    os.environ.get("GPUNET_BACKEND", "numpy") != "numpy",
    reason="CPU kernels: checked once, in the numpy session",
)

REPORT = (
    "from gpunet.kernels import _blas\n"
    "c = _blas.libraries().lib_controllers\n"
    "print(_blas.idle_spin(c[0]) if c else None, _blas.quiet())\n"
)


def _printed(code, **env):
    """The words ``code`` prints in a fresh interpreter, the thread settings unset but ``env``."""
    unset = ("OPENBLAS_THREAD_TIMEOUT", "OMP_WAIT_POLICY", "NUMBA_THREADING_LAYER")
    clean = {k: v for k, v in os.environ.items() if k not in unset}
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-c", code], env=clean, capture_output=True, text=True, check=True
    ).stdout.split()


def _report(first_import, with_header=False, **env):
    """(idle spin, quiet) in a fresh interpreter that runs ``first_import`` first."""
    out = _printed(f"{first_import}\n{REPORT}", **env)
    return tuple(out) if with_header else (out[0], out[1])


@pytest.fixture(scope="module")
def openblas():
    controllers = _blas.libraries().lib_controllers
    if not controllers or _blas.idle_spin(controllers[0]) is None:
        pytest.skip("NumPy's BLAS here is not an OpenBLAS that reports its idle spin")


@numpy_session
def test_gpunet_first_shortens_the_idle_spin(openblas):
    assert _report("import gpunet") == (str(_blas.SPIN), "True")


@numpy_session
def test_numpy_first_with_threads_running_takes_the_setting_too(openblas):
    numpy_first = (
        "import numpy, threadpoolctl\n"
        "x = numpy.ones((256, 256))\n"
        "x @ x\n"  # OpenBLAS's threads are up, with the default spin
        "blas = threadpoolctl.ThreadpoolController().select(user_api='blas')\n"
        "print(blas.lib_controllers[0].dynlib.openblas_thread_timeout())\n"
        "import gpunet\n"
        "assert (x @ x == 256).all()\n"  # its threads start again for the next call
    )
    unset, *after = _report(numpy_first, with_header=True)
    assert unset == "0"  # not set: OpenBLAS spins 2^28 cycles
    assert after == [str(_blas.SPIN), "True"]


@numpy_session
def test_a_value_in_the_environment_is_kept(openblas):
    assert _report("import gpunet", OPENBLAS_THREAD_TIMEOUT="12") == ("12", "True")
    assert _report("import gpunet", OPENBLAS_THREAD_TIMEOUT="24") == ("24", "False")


def _convolve(rng, dtype):
    """Forward and backward of a 5x5 convolution over enough images for many blocks."""
    x = rng.standard_normal((64, 16, 14, 14)).astype(dtype)
    w = rng.standard_normal((32, 16, 5, 5)).astype(dtype)
    b = rng.standard_normal(32).astype(dtype)
    geometry = ((1, 1), (2, 2), (1, 1))
    y, saved = kernels.conv2d_forward_cpu(x, w, b, *geometry, {})
    grad = rng.standard_normal(y.shape).astype(dtype)
    dx, dw, db = kernels.conv2d_backward_cpu(grad, saved, w, x.shape, *geometry, True, {})
    return y, dx, dw, db


@numpy_session
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shares_give_the_numbers_of_one_thread(monkeypatch, dtype):
    monkeypatch.setattr(_blas, "quiet", lambda: True)
    monkeypatch.setattr(_shares, "cores", lambda: 1)
    one = _convolve(np.random.default_rng(0), dtype)
    counts = []
    original = _shares.run

    def counted(shares, task):
        counts.append(shares)
        original(shares, task)

    monkeypatch.setattr(_shares, "cores", lambda: 3)
    monkeypatch.setattr(_shares, "run", counted)
    shared = _convolve(np.random.default_rng(0), dtype)
    assert counts == [3, 3]  # forward and backward
    # Sums of 400 (forward) to 12544 (weight gradient) products of unit normals: the BLAS
    # on one thread or two orders them differently, so they agree to rounding.
    tol = 2e-4 if dtype == np.float32 else 1e-11
    for a, b in zip(shared, one, strict=True):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def test_no_shares_while_the_blas_spins(monkeypatch):
    monkeypatch.setattr(_shares, "cores", lambda: 4)
    monkeypatch.setattr(_blas, "quiet", lambda: False)
    assert _shares.count(10) == 1
    monkeypatch.setattr(_blas, "quiet", lambda: True)
    assert (_shares.count(10), _shares.count(3), _shares.count(1)) == (4, 3, 1)


def test_deal_hands_out_the_pieces_in_turn(monkeypatch):
    monkeypatch.setattr(_blas, "quiet", lambda: True)
    monkeypatch.setattr(_shares, "cores", lambda: 3)
    dealt = {}
    _shares.deal(range(0, 14, 2), lambda share, pieces: dealt.update({share: list(pieces)}))
    assert dealt == {0: [0, 6, 12], 1: [2, 8], 2: [4, 10]}


def test_an_error_in_a_share_is_raised_after_every_share_ends():
    done = []

    def task(share):
        if share == 1:
            raise ValueError("share 1 failed")
        done.append(share)

    with pytest.raises(ValueError, match="share 1 failed"):
        _shares.run(3, task)
    assert sorted(done) == [0, 2]
    done.clear()
    with _shares._running:  # another thread's shares are running: these run in turn
        with pytest.raises(ValueError, match="share 1 failed"):
            _shares.run(3, task)
    assert done == [0, 2]


@numpy_session
def test_runs_from_two_threads_at_once_leave_the_blas_threads_as_they_were():
    """The BLAS is held to one thread while shares run; a second run meanwhile (another
    thread training another model) runs its shares one after the other instead, so that
    neither restores a count the other set."""
    import threading

    before = _blas.threads()
    if before < 2:
        pytest.skip("the BLAS runs one thread here")
    first_inside, second_inside, first_done = (threading.Event() for _ in range(3))
    during = []

    def first(share):
        if share == 0:
            first_inside.set()
            second_inside.wait(10)

    def second(share):
        during.append((share, _blas.threads(), threading.current_thread().name))
        second_inside.set()
        first_done.wait(10)

    def run_first():
        _shares.run(2, first)
        first_done.set()

    thread = threading.Thread(target=run_first)
    thread.start()
    assert first_inside.wait(10)
    _shares.run(2, second)
    thread.join(10)
    assert _blas.threads() == before
    main = threading.current_thread().name
    assert during == [(0, 1, main), (1, before, main)]  # in turn, here: the first finished


def _shares_in_child(done):
    _shares.run(2, lambda share: done.put(share))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_shares_work_in_a_forked_child():
    import multiprocessing

    _shares.run(2, lambda share: None)  # the parent's pool exists and has a thread
    context = multiprocessing.get_context("fork")
    done = context.Queue()
    child = context.Process(target=_shares_in_child, args=(done,))
    child.start()
    child.join(30)
    if child.exitcode is None:
        child.kill()
    assert child.exitcode == 0
    assert sorted(done.get(timeout=5) for _ in range(2)) == [0, 1]


def test_only_openblas_with_its_own_threads_reports_a_spin():
    class Controller:
        internal_api, threading_layer = "openblas", "openmp"

    assert _blas.idle_spin(Controller()) is None
    Controller.internal_api, Controller.threading_layer = "mkl", "intel"
    assert _blas.idle_spin(Controller()) is None


THREADS_REPORT = (
    "import os, numba\n"
    "from gpunet.kernels import _threads\n"
    "print(os.environ['OMP_WAIT_POLICY'], os.environ['OPENBLAS_THREAD_TIMEOUT'],"
    " _threads.numba_workers_sleep(), numba.threading_layer())\n"
)


def _threads_report(**env):
    return _printed(f"import gpunet\n{THREADS_REPORT}", **env)


@numpy_session
def test_gpunet_asks_numbas_openmp_workers_to_wait_passively():
    policy, spin, sleep, layer = _threads_report()
    assert (policy, spin) == ("passive", str(_blas.SPIN))
    assert sleep == str(layer in ("omp", "workqueue"))


@numpy_session
def test_a_wait_policy_in_the_environment_is_kept():
    policy, spin, sleep, layer = _threads_report(
        OMP_WAIT_POLICY="active", OPENBLAS_THREAD_TIMEOUT="9"
    )
    assert (policy, spin) == ("active", "9")
    assert sleep == str(layer == "workqueue")  # active OpenMP workers spin


@numpy_session
def test_the_workqueue_layer_counts_as_sleeping():
    assert _threads_report(NUMBA_THREADING_LAYER="workqueue")[2:] == ["True", "workqueue"]


@pytest.mark.parametrize(
    "layer, policy, passive_before, loaded_since, expected",
    [
        ("omp", "passive", False, True, True),
        ("omp", "PASSIVE", False, True, True),
        ("omp", "active", False, True, False),
        ("omp", "passive", False, False, False),  # loaded before gpunet set the policy
        ("omp", "passive", True, False, True),  # ... but the user had set it already
        ("workqueue", "active", False, False, True),
        ("tbb", "passive", False, True, False),  # its waits are not measured
    ],
)
def test_when_numbas_workers_count_as_sleeping(
    monkeypatch, layer, policy, passive_before, loaded_since, expected
):
    import numba

    monkeypatch.setattr(numba, "threading_layer", lambda: layer)
    monkeypatch.setenv("OMP_WAIT_POLICY", policy)
    monkeypatch.setattr(_threads, "_passive_before_gpunet", passive_before)
    monkeypatch.setattr(_blas, "openmp_loaded_since", lambda: loaded_since)
    assert _threads.numba_workers_sleep() is expected
    monkeypatch.setattr(_blas, "quiet", lambda: False)
    assert _threads.split_pays() is False


@numpy_session
def test_numbas_workers_sleep_after_another_openmp_runtime_loaded_first():
    pytest.importorskip("torch")  # brings its own copy of libgomp
    code = (
        "import torch, numba\n"
        "from gpunet.kernels import _blas, _threads\n"
        "print(_threads.numba_workers_sleep(), numba.threading_layer())\n"
    )
    sleep, layer = _printed(code.replace("import torch,", "import torch, gpunet,"))
    assert sleep == str(layer in ("omp", "workqueue"))
    # Numba's runtime started before gpunet could set the policy: one thread
    started_first = "import numba\nnumba.get_num_threads()\n" + code
    sleep, layer = _printed(started_first.replace("from gpunet", "import gpunet\nfrom gpunet"))
    assert sleep == str(layer == "workqueue")


@numpy_session
@pytest.mark.parametrize("layer", ["workqueue", "omp"])
def test_info_says_when_recurrent_cells_run_in_serial_builds(layer):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"}
    env["NUMBA_THREADING_LAYER"] = layer
    out = subprocess.run(
        [sys.executable, "-m", "gpunet", "info"], env=env, capture_output=True, text=True
    )
    if layer == "omp" and "layer omp" not in out.stdout:
        pytest.skip(f"Numba's omp layer does not load here: {out.stdout} {out.stderr}")
    (numba_line,) = [line for line in out.stdout.splitlines() if line.startswith("numba:")]
    note = "(one thread at a time: recurrent cells in serial builds)"
    assert (note in numba_line) is (layer == "workqueue"), numba_line
