"""gpunet.distributed in one process: bucketing, sharding, averaging and the errors.

A fake two-rank group (a communicator and a transport that play the other rank) checks
the arithmetic exactly; the real two-process runs are in test_distributed_mpi.py.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import gpunet
from gpunet import backend, distributed
from gpunet.distributed import state
from gpunet.distributed.broadcast import layout_mismatches
from gpunet.distributed.buckets import pack, plan_buckets, unpack
from gpunet.distributed.sharding import shard_of
from gpunet.nn import Dense, Sequential, Tanh
from gpunet.optim import SGD

has_mpi4py = importlib.util.find_spec("mpi4py") is not None


@pytest.fixture(autouse=True)
def _no_group():
    """Each test starts and ends without a process group."""
    state.install(None)
    yield
    state.install(None)


class OtherRankComm:
    """Rank 0 of two; the other rank sends what ``other`` makes of this rank's object."""

    def __init__(self, other=lambda obj: obj):
        self.other = other

    def allgather(self, obj):
        return [obj, self.other(obj)]

    def bcast(self, obj, root=0):
        return obj


class OtherRankTransport:
    """The other rank's gradient is ``3 * g + 1``, so the mean is ``2 * g + 0.5``."""

    name = "fake"

    def __init__(self):
        self.calls, self.bytes = 0, 0

    def allreduce_sum(self, flat):
        self.calls += 1
        self.bytes += flat.shape[0] * np.dtype(str(flat.dtype).rsplit(".", 1)[-1]).itemsize
        return _Done(flat + (3 * flat + 1))

    def broadcast(self, flat, root=0):
        return flat * 0 + 7  # rank 0's values: all sevens


class _Done:
    def __init__(self, value):
        self.value = value

    def wait(self):
        return self.value


def _two_ranks(rank=0, comm=None):
    group = state.ProcessGroup(comm or OtherRankComm(), rank, 2, rank, OtherRankTransport())
    state.install(group)
    return group


def _model():
    return Sequential(Dense(5, 4), Tanh(), Dense(4, 3)).astype("float64")


def _fill_gradients(model):
    for index, p in enumerate(model.parameters()):
        xp = backend.namespace(p.data)
        size = int(np.prod(p.shape))
        values = xp.arange(size, dtype=xp.float64) + 100 * index
        p.grad = xp.reshape(values, p.shape)


# --------------------------------------------------------------------------- without init()


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: distributed.rank(), "rank"),
        (lambda: distributed.world_size(), "world_size"),
        (lambda: distributed.is_main(), "is_main"),
        (lambda: distributed.shard(np.arange(8)), "shard"),
        (lambda: distributed.average({"loss": 1.0}), "average"),
        (lambda: distributed.local_batch_size(64), "local_batch_size"),
        (lambda: distributed.broadcast_parameters(_model()), "broadcast_parameters"),
        (
            lambda: distributed.DistributedOptimizer(SGD(_model().parameters(), lr=0.1)).step(),
            "DistributedOptimizer.step",
        ),
    ],
)
def test_calls_before_init_say_what_to_do(call, name):
    assert not distributed.is_initialized()
    with pytest.raises(RuntimeError, match=rf"gpunet\.distributed\.{name}: .* call "
                       r"gpunet\.distributed\.init\(\) first"):  # fmt: skip
        call()


# --------------------------------------------------------------------------- buckets


def test_buckets_group_by_dtype_last_layer_first_within_the_byte_limit():
    layout = [((10,), "float32"), ((4, 5), "float32"), ((3,), "float64"), ((30,), "float32")]
    buckets = plan_buckets(layout, bucket_bytes=100)
    # reversed order: index 3 (120 bytes, alone: over the limit), then 1 + 0 (80 + 40 > 100)
    assert [b.indices for b in buckets] == [(3,), (1,), (2,), (0,)]
    assert [b.dtype for b in buckets] == ["float32", "float32", "float64", "float32"]
    assert [b.nbytes for b in buckets] == [120, 80, 24, 40]
    together = plan_buckets(layout, bucket_bytes=1000)
    assert [b.indices for b in together] == [(3, 1, 0), (2,)]
    assert together[0].shapes == ((30,), (4, 5), (10,))


def test_bucket_bytes_must_be_positive():
    with pytest.raises(ValueError, match="bucket_bytes must be an int >= 1, got 0"):
        plan_buckets([((3,), "float32")], bucket_bytes=0)


def test_pack_then_unpack_gives_the_arrays_back(xp):
    arrays = [xp.reshape(xp.arange(6, dtype=xp.float32), (2, 3)), xp.ones(4, dtype=xp.float32)]
    flat = pack(arrays)
    assert flat.shape == (10,)
    back = unpack(flat, [(2, 3), (4,)])
    for original, restored in zip(arrays, back, strict=True):
        np.testing.assert_array_equal(gpunet.to_numpy(restored), gpunet.to_numpy(original))


# --------------------------------------------------------------------------- the optimizer


def test_gradients_are_averaged_over_ranks_in_every_bucket(xp):
    _two_ranks()
    model = _model()
    optimizer = distributed.DistributedOptimizer(SGD(model.parameters(), lr=0.1), bucket_bytes=64)
    _fill_gradients(model)
    mine = [gpunet.to_numpy(p.grad).copy() for p in model.parameters()]
    optimizer.average_gradients()
    for p, g in zip(model.parameters(), mine, strict=True):
        np.testing.assert_array_equal(gpunet.to_numpy(p.grad), 2 * g + 0.5)
    transport = state.current("test").transport
    parameter_bytes = sum(g.size * 8 for g in mine)
    assert transport.bytes == optimizer.bytes_per_step == parameter_bytes == 8 * (24 + 15)
    # 64-byte buckets: 3 + 12*8 bytes alone... one call per bucket, not per parameter
    assert transport.calls == optimizer.calls_per_step == len(plan_buckets(
        [(p.shape, "float64") for p in model.parameters()], 64))  # fmt: skip


def test_one_bucket_for_a_small_model_and_a_missing_gradient_counts_as_zero(xp):
    _two_ranks()
    model = _model()
    optimizer = distributed.DistributedOptimizer(SGD(model.parameters(), lr=0.1))
    _fill_gradients(model)
    model.parameters()[0].grad = None
    optimizer.average_gradients()
    assert optimizer.calls_per_step == 1
    np.testing.assert_array_equal(gpunet.to_numpy(model.parameters()[0].grad), np.full((5, 4), 0.5))


def test_step_averages_then_updates_like_the_wrapped_optimizer(xp):
    _two_ranks()
    model = _model()
    before = [gpunet.to_numpy(p.data).copy() for p in model.parameters()]
    optimizer = distributed.DistributedOptimizer(SGD(model.parameters(), lr=0.1))
    _fill_gradients(model)
    mine = [gpunet.to_numpy(p.grad).copy() for p in model.parameters()]
    optimizer.step()
    for p, w, g in zip(model.parameters(), before, mine, strict=True):
        np.testing.assert_allclose(gpunet.to_numpy(p.data), w - 0.1 * (2 * g + 0.5), rtol=1e-12)
    assert optimizer.step_count == 1


def test_the_wrapper_is_the_wrapped_optimizer_for_everyone_else():
    sgd = SGD(_model().parameters(), lr=0.1)
    optimizer = distributed.DistributedOptimizer(sgd)
    assert isinstance(optimizer, gpunet.optim.Optimizer)
    optimizer.lr = 0.05  # what a scheduler does
    assert sgd.lr == 0.05 and optimizer.lr == 0.05
    assert optimizer.state_dict() == sgd.state_dict()
    assert optimizer.params is sgd.params
    with pytest.raises(TypeError, match="DistributedOptimizer: expected a gpunet optimizer"):
        distributed.DistributedOptimizer(optimizer)


# --------------------------------------------------------------------------- broadcast


def test_broadcast_parameters_loads_rank_0_values(xp):
    _two_ranks(rank=1)
    model = _model()
    distributed.broadcast_parameters(model)
    for p in model.parameters():
        np.testing.assert_array_equal(gpunet.to_numpy(p.data), np.full(p.shape, 7.0))
        assert backend.library_of(p.data) == backend.name()


def test_a_parameter_shaped_differently_on_another_rank_is_named():
    def other_rank(layout):
        return [(n, (5, 8) if n == "0.weight" else s, d) for n, s, d in layout]

    _two_ranks(comm=OtherRankComm(other_rank))
    with pytest.raises(
        ValueError,
        match=r"broadcast_parameters: the model differs across ranks: '0\.weight' is "
        r"\(5, 4\) float64 on rank 0 but \(5, 8\) float64 on rank 1",
    ):
        distributed.broadcast_parameters(_model())


def test_layout_mismatches_names_missing_and_reordered_parameters():
    rank0 = [("a", (2,), "float32"), ("b", (3,), "float32")]
    assert layout_mismatches([rank0, rank0]) == []
    assert layout_mismatches([rank0, rank0[:1]]) == ["'b' exists on rank 0 but not on rank 1"]
    assert layout_mismatches([rank0, rank0[::-1]]) == [
        "the parameters are in another order on rank 1 than on rank 0"
    ]


# --------------------------------------------------------------------------- sampler, metrics


@pytest.mark.parametrize("size, local_batch", [(2, 32), (3, 5), (4, 1)])
def test_shards_cut_into_local_batches_make_up_the_global_batches(size, local_batch):
    order = np.random.default_rng(0).permutation(203)
    shards = [shard_of(order, r, size) for r in range(size)]
    assert {len(s) for s in shards} == {203 // size}  # same number of steps on every rank
    global_batch = size * local_batch
    for k in range(len(shards[0]) // local_batch):
        together = np.concatenate([s[k * local_batch : (k + 1) * local_batch] for s in shards])
        expected = order[k * global_batch : (k + 1) * global_batch]
        np.testing.assert_array_equal(np.sort(together), np.sort(expected))
    assert len(np.unique(np.concatenate(shards))) == (203 // size) * size


def test_shard_uses_rank_0_order_and_checks_its_input():
    rank0_order = np.arange(10)[::-1].copy()
    _two_ranks(rank=1, comm=type("Comm", (), {"bcast": lambda self, o, root=0: rank0_order})())
    np.testing.assert_array_equal(distributed.shard(np.arange(10)), [8, 6, 4, 2, 0])
    with pytest.raises(ValueError, match=r"shard: expected a 1-D array of sample indices, got "
                       r"shape \(2, 5\) dtype int64"):  # fmt: skip
        distributed.shard(np.zeros((2, 5), dtype=np.int64))


def test_a_global_batch_the_world_size_does_not_divide_is_refused():
    _two_ranks()
    assert distributed.local_batch_size(64) == 32
    with pytest.raises(
        ValueError, match="the global batch size 63 is not divisible by the world size 2"
    ):
        distributed.local_batch_size(63)
    with pytest.raises(ValueError, match="is not divisible by the world size 2"):
        distributed.shard(np.arange(8), batch_size=5)


def test_average_is_the_mean_over_ranks(xp):
    _two_ranks(comm=OtherRankComm(lambda logs: {k: v + 1.0 for k, v in logs.items()}))
    logs = {"loss": xp.asarray(0.5, dtype=xp.float64), "accuracy": 0.75}
    assert distributed.average(logs) == {"loss": 1.0, "accuracy": 1.25}


def test_average_refuses_different_keys_and_non_numbers():
    _two_ranks(comm=OtherRankComm(lambda logs: {"other": 1.0}))
    with pytest.raises(ValueError, match=r"rank 1 logged \['other'\] but rank 0 logged \['loss'\]"):
        distributed.average({"loss": 1.0})
    with pytest.raises(TypeError, match="average: 'name' is str, not a number"):
        distributed.average({"name": "mlp"})


# --------------------------------------------------------------------------- real MPI, one rank


@pytest.mark.skipif(not has_mpi4py, reason="mpi4py is not installed (gpunet[distributed])")
@pytest.mark.skipif(backend.name() == "cupy", reason="one rank over MPI, not NCCL")
def test_init_without_mpirun_is_a_job_of_one(xp):
    group = distributed.init()
    assert distributed.init() is group
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    assert group.transport.name == "mpi"
    flat = xp.asarray([1.0, 2.0], dtype=xp.float64)
    summed = group.transport.allreduce_sum(flat).wait()
    assert backend.library_of(summed) == backend.name()
    np.testing.assert_array_equal(gpunet.to_numpy(summed), [1.0, 2.0])
    model = _model()
    before = [gpunet.to_numpy(p.data).copy() for p in model.parameters()]
    distributed.broadcast_parameters(model)
    optimizer = distributed.DistributedOptimizer(SGD(model.parameters(), lr=0.1))
    _fill_gradients(model)
    optimizer.step()
    assert optimizer.bytes_per_step == 0  # nothing to send with one rank
    for p, w in zip(model.parameters(), before, strict=True):
        assert not np.array_equal(gpunet.to_numpy(p.data), w)
    np.testing.assert_array_equal(distributed.shard(np.arange(5)), np.arange(5))
    assert distributed.average({"loss": 2.0}) == {"loss": 2.0}
