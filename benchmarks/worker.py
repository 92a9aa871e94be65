"""One framework's side of a benchmark, in its own process so its peak memory is its own.

Protocol (lines on stdin/stdout, JSON answers):
    start:  python -m benchmarks.worker MODULE FRAMEWORK DEVICE BATCH
            -> {"ready": true, "build_s": ..., "tf32": {...}}   (after 3 warm-up steps)
    "run K" -> {"times": [seconds of each of K steps]}
    "quit"  -> {"peak_rss_mb": ..., "peak_device_bytes": ...}

On the GPU both sides compute in full float32: TF32 is off for PyTorch's cuDNN
convolutions (on by default) and its GEMMs, as it is for CuPy's cuBLAS GEMMs
(``CUPY_TF32=0``, CuPy's default). Peak device memory is what each framework's caching
allocator holds from the device: CuPy's pool total against
``torch.cuda.max_memory_reserved``.
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import sys
import time

WARMUP_STEPS = 3


def _peak_device_bytes(framework: str, device: str, tracker: dict) -> int | None:
    if device != "gpu":
        return None
    if framework == "torch":
        import torch

        return int(torch.cuda.max_memory_reserved())
    return tracker["peak"]


def tf32_off(framework: str, device: str) -> dict[str, bool]:
    """Turn TF32 off for ``framework`` on the GPU; returns the settings now in force."""
    if device != "gpu":
        return {}
    if framework == "torch":
        import torch

        torch.backends.cudnn.allow_tf32 = False  # cuDNN convolutions: on by default
        torch.backends.cuda.matmul.allow_tf32 = False
        return {
            "torch.backends.cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
            "torch.backends.cuda.matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        }
    os.environ["CUPY_TF32"] = "0"  # read by CuPy when it is imported
    return {"CUPY_TF32": os.environ["CUPY_TF32"] != "0"}


def main() -> int:
    module_name, framework, device, batch = sys.argv[1:5]
    if device == "gpu" and framework == "gpunet":
        os.environ["GPUNET_BACKEND"] = "cupy"
    tf32 = tf32_off(framework, device)
    module = importlib.import_module(f"benchmarks.{module_name}")
    start = time.perf_counter()
    step = module.build(framework, device, int(batch))
    tracker = {"peak": 0}
    pool = None
    if device == "gpu" and framework == "gpunet":
        import cupy

        pool = cupy.get_default_memory_pool()
    for _ in range(WARMUP_STEPS):
        step()
    ready = {"ready": True, "build_s": time.perf_counter() - start, "tf32": tf32}
    print(json.dumps(ready), flush=True)
    for line in sys.stdin:
        command = line.split()
        if command[0] == "run":
            times = []
            for _ in range(int(command[1])):
                begin = time.perf_counter()
                step()
                times.append(time.perf_counter() - begin)
                if pool is not None:
                    tracker["peak"] = max(tracker["peak"], pool.total_bytes())
            print(json.dumps({"times": times}), flush=True)
        elif command[0] == "quit":
            rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            print(
                json.dumps(
                    {
                        "peak_rss_mb": rss_kb / 1024,
                        "peak_device_bytes": _peak_device_bytes(framework, device, tracker),
                    }
                ),
                flush=True,
            )
            return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
