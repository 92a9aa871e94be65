"""One framework's side of a benchmark, in its own process so its peak memory is its own.

Protocol (lines on stdin/stdout, JSON answers):
    start:  python -m benchmarks.worker MODULE FRAMEWORK DEVICE BATCH
            -> {"ready": true, "build_s": ...}   (after building and 3 warm-up steps)
    "run K" -> {"times": [seconds of each of K steps]}
    "quit"  -> {"peak_rss_mb": ..., "peak_device_bytes": ...}
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

        return int(torch.cuda.max_memory_allocated())
    return tracker["peak"]


def main() -> int:
    module_name, framework, device, batch = sys.argv[1:5]
    if device == "gpu" and framework == "gpunet":
        os.environ["GPUNET_BACKEND"] = "cupy"
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
    print(json.dumps({"ready": True, "build_s": time.perf_counter() - start}), flush=True)
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
