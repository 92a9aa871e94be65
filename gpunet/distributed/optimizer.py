"""DistributedOptimizer: average the gradients over the ranks, then take the step."""

from __future__ import annotations

from typing import Any

from gpunet.backend import namespace
from gpunet.distributed import state
from gpunet.distributed.broadcast import check_same_layout, dtype_name
from gpunet.distributed.buckets import DEFAULT_BUCKET_BYTES, Bucket, pack, plan_buckets, unpack
from gpunet.optim.optimizer import Optimizer


class DistributedOptimizer(Optimizer):
    """Wraps any gpunet optimizer for data-parallel training.

    ``step()`` first replaces every parameter's gradient by its mean over the ranks,
    then lets the wrapped optimizer update as usual, so every rank takes the same step
    from the same weights (start them equal with ``broadcast_parameters``). With a
    local batch of ``B / world_size`` samples per rank, the mean of the ranks' mean
    gradients is the mean gradient of the global batch of ``B``:

        g = (1 / W) * sum_r g_r,    g_r = (1 / b) * sum_{i in batch of rank r} grad_i

    The gradients travel as a few flat buffers (buckets of at most ``bucket_bytes``,
    one dtype each, last layer first); all buckets are started before the first is
    waited for. On NumPy they are reduced in place over MPI; on CuPy over NCCL on
    the device, queued on the compute stream. A parameter with no gradient on a rank
    counts as a zero gradient there.

    Everything else (``lr``, ``step_count``, ``state_dict()``, ``zero_grad()``) is the
    wrapped optimizer's, so schedulers and checkpoints see the optimizer they know.

    Args:
        optimizer: the optimizer to wrap, e.g. ``SGD(model.parameters(), lr=0.1)``.
        bucket_bytes: the most bytes per allreduce call (default 25 MiB).

    Attributes:
        bytes_per_step: bytes of gradient each rank contributes to the allreduce per
            step (0 before the first step).
        calls_per_step: allreduce calls per step.
    """

    _own = ("optimizer", "bucket_bytes", "_plan", "_signature", "bytes_per_step", "calls_per_step")

    def __init__(self, optimizer: Optimizer, bucket_bytes: int = DEFAULT_BUCKET_BYTES):
        # The wrapped optimizer keeps the parameters, state and hyper-parameters; this
        # object only adds the averaging, so Optimizer.__init__ is not run.
        if not isinstance(optimizer, Optimizer) or isinstance(optimizer, DistributedOptimizer):
            raise TypeError(
                f"DistributedOptimizer: expected a gpunet optimizer such as SGD, "
                f"got {type(optimizer).__name__}"
            )
        plan_buckets([], bucket_bytes)  # validates bucket_bytes
        object.__setattr__(self, "optimizer", optimizer)
        object.__setattr__(self, "bucket_bytes", bucket_bytes)
        object.__setattr__(self, "_plan", [])
        object.__setattr__(self, "_signature", None)
        object.__setattr__(self, "bytes_per_step", 0)
        object.__setattr__(self, "calls_per_step", 0)

    def __getattr__(self, name: str) -> Any:
        if name in DistributedOptimizer._own:  # not yet set: avoid recursing into optimizer
            raise AttributeError(name)
        return getattr(self.optimizer, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in DistributedOptimizer._own:
            object.__setattr__(self, name, value)
        else:  # lr and friends belong to the wrapped optimizer (schedulers write them)
            setattr(self.optimizer, name, value)

    @property
    def hyperparameters(self) -> tuple[str, ...]:
        return self.optimizer.hyperparameters

    # ---------------------------------------------------------------- the step

    def step(self) -> None:
        """Average the gradients over the ranks, then update every parameter."""
        group = state.current("DistributedOptimizer.step")
        self.optimizer.check_gradients()  # before they are packed into flat buffers
        self.average_gradients(group)
        self.optimizer.step()

    def average_gradients(self, group: state.ProcessGroup | None = None) -> None:
        """Replace each parameter's ``.grad`` by its mean over the ranks."""
        group = group or state.current("DistributedOptimizer.average_gradients")
        params = self.optimizer.params
        plan = self._buckets(group, params)
        if group.size == 1:
            return
        scale = 1.0 / group.size
        pending = [
            (bucket, group.transport.allreduce_sum(pack(_gradients(params, bucket))))
            for bucket in plan
        ]
        for bucket, reduction in pending:
            total = reduction.wait()
            for index, grad in zip(
                bucket.indices, unpack(total * scale, bucket.shapes), strict=True
            ):
                params[index].grad = grad

    def _buckets(self, group: state.ProcessGroup, params: list[Any]) -> list[Bucket]:
        # Re-planned only when the parameters change shape or dtype (model.astype).
        signature = [(str(i), p.shape, dtype_name(p.data)) for i, p in enumerate(params)]
        if signature != self._signature:
            check_same_layout(group, "DistributedOptimizer.step", signature)
            self._plan = plan_buckets([(s, d) for _, s, d in signature], self.bucket_bytes)
            self._signature = signature
            self.bytes_per_step = sum(b.nbytes for b in self._plan) if group.size > 1 else 0
            self.calls_per_step = len(self._plan) if group.size > 1 else 0
        return self._plan

    # ---------------------------------------------------------------- the rest is the wrapped one's

    def zero_grad(self) -> None:
        self.optimizer.zero_grad()

    def update(self, param: Any, state_: dict[str, Any]) -> None:
        self.optimizer.update(param, state_)

    def state_dict(self) -> dict[str, Any]:
        return self.optimizer.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state_dict)

    def checked_state_dict(self, state_dict: dict[str, Any]) -> dict[str, Any]:
        return self.optimizer.checked_state_dict(state_dict)

    def __repr__(self) -> str:
        return f"DistributedOptimizer({self.optimizer!r})"


def _gradients(params: list[Any], bucket: Bucket) -> list[Any]:
    grads = []
    for index in bucket.indices:
        param = params[index]
        if param.grad is None:
            xp = namespace(param.data)
            grads.append(xp.zeros(param.data.shape, dtype=param.data.dtype))
        else:
            grads.append(param.grad)
    return grads
