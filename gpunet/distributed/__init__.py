"""Data-parallel training across processes (MPI) and GPUs (NCCL).

Run the same script on every rank with ``mpirun -n 4 python train.py``::

    from gpunet import distributed

    distributed.init()                      # ranks from MPI; on CuPy, a GPU and NCCL
    model = build_model()
    distributed.broadcast_parameters(model)  # everyone starts from rank 0's weights
    optimizer = distributed.DistributedOptimizer(SGD(model.parameters(), lr=0.1))
    fit(model, ..., optimizer=optimizer)    # shards data, averages logs, rank 0 writes

Without ``mpirun`` the same script is a job of one process.
"""

from gpunet.distributed.broadcast import broadcast_parameters, check_same_on_every_rank
from gpunet.distributed.launch import init, is_main, rank, world_size
from gpunet.distributed.metrics import average
from gpunet.distributed.optimizer import DistributedOptimizer
from gpunet.distributed.sharding import local_batch_size, shard
from gpunet.distributed.state import is_initialized

__all__ = [
    "DistributedOptimizer",
    "average",
    "broadcast_parameters",
    "check_same_on_every_rank",
    "init",
    "is_initialized",
    "is_main",
    "local_batch_size",
    "rank",
    "shard",
    "world_size",
]
