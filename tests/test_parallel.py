"""gpunet's CPU threads: nothing changed at import, one rule for splitting work, the BLAS
held to one thread only inside gpunet's own parallel calls."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import threading

import numpy as np
import pytest
from gpunet.kernels import _jit, _parallel

numpy_session = pytest.mark.skipif(
    os.environ.get("GPUNET_BACKEND", "numpy") != "numpy",
    reason="CPU threads: checked once, in the numpy session",
)
ROOT = pathlib.Path(__file__).resolve().parents[1]


def _fresh(code):
    """What ``code`` prints (JSON) in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return json.loads(done.stdout)


@numpy_session
def test_import_changes_neither_the_environment_nor_the_blas():
    code = (
        "import json, os, numpy\n"
        "from threadpoolctl import threadpool_info\n"
        "before = (dict(os.environ), threadpool_info())\n"
        "import gpunet\n"
        "after = (dict(os.environ), threadpool_info())\n"
        "print(json.dumps([before, after]))\n"
    )
    before, after = _fresh(code)
    assert after[0] == before[0]
    assert after[1] == before[1]


def test_the_source_makes_no_process_wide_settings():
    sources = [*(ROOT / "gpunet").rglob("*.py"), *(ROOT / "kernels").rglob("*.py")]
    for path in sources:
        text = path.read_text()
        for word in ("mallopt", "openblas_read_env", "blas_thread_shutdown", "os.environ["):
            assert word not in text, f"{path.name} uses {word}"
        assert "os.environ.setdefault" not in text, path.name


def _counts(libraries):
    return [lib.get_num_threads() for lib in libraries]


@pytest.fixture(params=["own setter", "threadpoolctl"])
def libraries(request, monkeypatch):
    """The BLAS libraries, set through OpenBLAS's own setter or threadpoolctl's."""
    libraries, setters = _parallel._scan()
    if not libraries:
        pytest.skip("threadpoolctl finds no BLAS here")
    if request.param == "threadpoolctl":
        generic = []
        for lib in libraries:
            monkeypatch.delattr(lib.dynlib, "openblas_set_num_threads_local", raising=False)
            generic.append(_parallel._setter(lib))
        monkeypatch.setattr(_parallel, "_known", (libraries, generic))
    return libraries


@numpy_session
def test_blas_runs_on_one_thread_inside_and_is_restored_after(libraries):
    before = _counts(libraries)
    assert max(before) > 1, "the test needs a BLAS on several threads"
    with _parallel.blas_single_threaded():
        assert _counts(libraries) == [1] * len(libraries)
        with _parallel.blas_single_threaded():  # re-entrant
            assert _counts(libraries) == [1] * len(libraries)
        assert _counts(libraries) == [1] * len(libraries)
    assert _counts(libraries) == before


@numpy_session
def test_blas_held_by_two_threads_at_once_is_restored_by_the_last(libraries):
    before = _counts(libraries)
    first_in, second_out, seen = threading.Event(), threading.Event(), {}

    def first():
        with _parallel.blas_single_threaded():
            first_in.set()
            second_out.wait(10)
        seen["first out"] = _counts(libraries)

    worker = threading.Thread(target=first)
    worker.start()
    first_in.wait(10)
    with _parallel.blas_single_threaded():
        seen["both in"] = _counts(libraries)
    seen["second out"] = _counts(libraries)  # the first is still inside
    second_out.set()
    worker.join(10)
    assert seen["both in"] == seen["second out"] == [1] * len(libraries)
    assert seen["first out"] == _counts(libraries) == before


def test_the_rule_splits_only_work_that_pays(monkeypatch):
    monkeypatch.setattr(_parallel, "threads", lambda: 4)
    assert _parallel.count(100, _parallel.MIN_WORK - 1) == 1
    assert _parallel.count(100, 2 * _parallel.MIN_WORK) == 2
    assert _parallel.count(100, 100 * _parallel.MIN_WORK) == 4
    assert _parallel.count(3, 100 * _parallel.MIN_WORK) == 3
    assert _parallel.count(1, 100 * _parallel.MIN_WORK) == 1
    assert _parallel.bounds(10, 3) == [0, 3, 6, 10]


def test_threads_follow_set_num_threads_and_reject_bad_counts():
    try:
        _parallel.set_num_threads(3)
        assert _parallel.threads() == 3
        for bad in (0, -1, 1.5, True, "2"):
            with pytest.raises(ValueError, match="set_num_threads: expected an int >= 1 or None"):
                _parallel.set_num_threads(bad)
    finally:
        _parallel.set_num_threads(None)
    assert 1 <= _parallel.threads() <= _parallel.cores()


@numpy_session
def test_a_user_limit_on_the_blas_keeps_gpunet_on_one_thread():
    from threadpoolctl import threadpool_limits

    if not _parallel._libraries():
        pytest.skip("threadpoolctl finds no BLAS here")
    with threadpool_limits(1, user_api="blas"):
        assert _parallel.threads() == 1


def test_parts_run_at_once_on_their_own_threads_and_errors_arrive_after_all(monkeypatch):
    monkeypatch.setattr(_parallel, "threads", lambda: 2)
    names, finished = {}, []

    def task(part):
        names[part] = threading.current_thread().name
        finished.append(part)
        if part == 1:
            raise RuntimeError("part 1 failed")

    with pytest.raises(RuntimeError, match="part 1 failed"):
        _parallel.run(2, task)
    assert sorted(finished) == [0, 1]
    assert names[0] == threading.current_thread().name
    assert names[1] != names[0]


def test_a_run_inside_a_part_runs_its_parts_in_turn(monkeypatch):
    monkeypatch.setattr(_parallel, "threads", lambda: 2)
    seen = []

    def inner(part):
        seen.append((part, threading.current_thread().name))

    def outer(part):
        assert _parallel.count(10, 10 * _parallel.MIN_WORK) == 1
        if part == 1:
            _parallel.run(2, inner)

    _parallel.run(2, outer)
    assert [part for part, _ in seen] == [0, 1]
    assert seen[0][1] == seen[1][1]


@pytest.mark.parametrize("shape", [(300, 40, 200), (20, 300, 400)], ids=["rows", "columns"])
def test_matmul_in_parts_equals_numpy(shape, monkeypatch):
    monkeypatch.setattr(_parallel, "threads", lambda: 2)
    rng = np.random.default_rng(0)
    m, k, n = shape
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    np.testing.assert_allclose(_parallel.matmul(a, b), a @ b, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(_parallel.matmul(a.T.copy().T, b), a @ b, rtol=1e-5, atol=1e-4)


def test_a_kernel_compiles_without_a_cache_where_none_can_be_written(monkeypatch):
    import numba

    real = numba.njit

    def refusing(*args, cache=False, **options):
        if cache:
            raise RuntimeError("cannot cache function 'twice': no locator available")
        return real(*args, **options)

    monkeypatch.setattr(numba, "njit", refusing)

    def twice(x):
        return 2 * x

    kernel = _jit.cpu_kernel(twice)
    assert kernel(21) == 42
    assert "NOT cached" in _jit.cache_report()


@numpy_session
def test_a_rescan_while_the_blas_is_held_restores_what_was_saved(libraries):
    before = _counts(libraries)
    with _parallel.blas_single_threaded():
        _parallel.rescan_blas()  # a module loading another BLAS, meanwhile
        _parallel._scan()
    assert _counts(libraries) == before


def test_matmul_counts_the_memory_a_gemm_touches(monkeypatch):
    """A product with a short inner dimension is mostly reading and writing: its
    3200 x 32 x 512 multiply-adds alone (1.6 MIN_WORK) would stay on one thread, with the
    6.5 MB it writes it splits in two."""
    monkeypatch.setattr(_parallel, "threads", lambda: 2)
    parts = []
    monkeypatch.setattr(_parallel, "run", lambda count, task, blas=True: parts.append(count))
    a = np.zeros((3200, 32), dtype=np.float32)
    b = np.zeros((32, 512), dtype=np.float32)
    assert 3200 * 32 * 512 / 32 < 2 * _parallel.MIN_WORK
    _parallel.matmul(a, b)
    assert parts == [2]
