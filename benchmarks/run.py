"""Run the workloads W1-W7 for gpunet and PyTorch, interleaved, and compare medians.

    python -m benchmarks                    # CPU, every workload
    python -m benchmarks --only W1 W5       # some of them
    python -m benchmarks --device gpu       # CUDA: CuPy against PyTorch with cuDNN

Each framework runs in its own worker process (peak memory is its own); the parent
alternates rounds between them, so both see the same noise, and reports per-step medians,
the ratio gpunet / PyTorch (below 1 means gpunet is faster), peak memory, and the
achieved GFLOP/s against this machine's measured GEMM rate. On the GPU both frameworks
compute in full float32 (TF32 off on both sides, see ``benchmarks.worker``). Output: a
table, and one JSON line per workload (also appended to --json FILE as each workload
finishes, so a run cut short keeps what it measured).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import pkgutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
FRAMEWORKS = ("gpunet", "torch")


def workloads() -> dict[str, object]:
    """Every ``benchmarks/wN_*.py`` module by its NAME (W1, W2, ...)."""
    found = {}
    for info in pkgutil.iter_modules([str(HERE)]):
        if info.name[0] == "w" and info.name[1:2].isdigit():
            module = importlib.import_module(f"benchmarks.{info.name}")
            found[module.NAME] = module
    return dict(sorted(found.items()))


def gemm_rate(device: str) -> float:
    """This machine's float32 GEMM rate in GFLOP/s (best of several 1024^3 products)."""
    n = 1024
    if device == "gpu":
        import cupy as xp
    else:
        xp = np
    a = xp.ones((n, n), dtype=np.float32)
    best = float("inf")
    for _ in range(5):
        begin = time.perf_counter()
        for _ in range(4):
            a @ a
        if device == "gpu":
            xp.cuda.get_current_stream().synchronize()
        best = min(best, (time.perf_counter() - begin) / 4)
    return 2 * n**3 / best / 1e9


class Worker:
    """A worker process running one framework's step on request."""

    def __init__(self, module: str, framework: str, device: str, batch: int):
        self.framework = framework
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.worker", module, framework, device, str(batch)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=HERE.parent,
        )
        self.ready = self._answer()

    def _answer(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"benchmark worker for {self.framework} exited early")
        return json.loads(line)

    def run(self, steps: int) -> list[float]:
        self.process.stdin.write(f"run {steps}\n")
        self.process.stdin.flush()
        return self._answer()["times"]

    def finish(self) -> dict:
        self.process.stdin.write("quit\n")
        self.process.stdin.flush()
        answer = self._answer()
        self.process.wait(timeout=60)
        return answer


def measure(
    module,
    device: str,
    batch: int,
    frameworks: tuple[str, ...],
    rounds: int,
    seconds_per_round: float,
    processes: int = 1,
) -> dict:
    """Interleaved rounds of each framework; returns medians, ratio, memory, GFLOP/s.

    With ``processes`` > 1 the rounds are split over that many fresh pairs of workers,
    one pair after the other: a process's speed on a shared machine can stay off by tens
    of percent for its whole life (where its memory landed, which core it shares), and
    fresh processes sample that too.
    """
    times: dict[str, list[float]] = {fw: [] for fw in frameworks}
    memory: dict[str, dict] = {}
    tf32: dict[str, dict] = {}
    name = module.__name__.rsplit(".", 1)[-1]
    for process_index in range(processes):
        workers = {fw: Worker(name, fw, device, batch) for fw in frameworks}
        tf32.update({fw: w.ready.get("tf32", {}) for fw, w in workers.items()})
        # size a round from one probe step of each, so a round lasts about seconds_per_round
        steps = {
            fw: max(1, int(seconds_per_round / max(w.run(1)[0], 1e-6))) for fw, w in workers.items()
        }
        share = rounds // processes + (1 if process_index < rounds % processes else 0)
        for round_index in range(max(1, share)):
            order = frameworks if round_index % 2 == 0 else frameworks[::-1]
            for fw in order:
                times[fw].extend(workers[fw].run(steps[fw]))
        for fw, worker in workers.items():
            finished = worker.finish()
            kept = memory.setdefault(fw, finished)
            for key in ("peak_rss_mb", "peak_device_bytes"):
                if finished[key] is not None and finished[key] > (kept[key] or 0):
                    kept[key] = finished[key]
    result = {
        "workload": module.NAME,
        "description": module.DESCRIPTION,
        "device": device,
        "batch": batch,
        "processes": processes,
    }
    flops = module.flops(batch)
    for fw in frameworks:
        median = statistics.median(times[fw])
        result[f"{fw}_ms"] = round(median * 1e3, 4)
        result[f"{fw}_gflops"] = round(flops / median / 1e9, 2)
        result[f"{fw}_peak_rss_mb"] = round(memory[fw]["peak_rss_mb"], 1)
        if memory[fw]["peak_device_bytes"] is not None:
            result[f"{fw}_peak_device_mb"] = round(memory[fw]["peak_device_bytes"] / 2**20, 1)
        result[f"{fw}_steps"] = len(times[fw])
    if device == "gpu":
        result["tf32"] = tf32
    if "torch" in frameworks:
        # four significant digits: a ratio far below 1 keeps its precision
        result["ratio"] = float(f"{result['gpunet_ms'] / result['torch_ms']:.4g}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--only", nargs="*", help="workload names, e.g. W1 W5")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=0.5, help="length of one round")
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="spread the rounds over this many fresh worker pairs (default 1)",
    )
    parser.add_argument("--batch", type=int, help="override every workload's batch size")
    parser.add_argument("--json", type=Path, help="append the JSON lines to this file")
    args = parser.parse_args(argv)

    frameworks = FRAMEWORKS
    if importlib.util.find_spec("torch") is None:
        frameworks = ("gpunet",)
        print("PyTorch is not installed: timing gpunet alone (pip install torch to compare)")
    elif args.device == "gpu" and not _torch_has_cuda():
        frameworks = ("gpunet",)
        print("PyTorch has no CUDA here: timing gpunet alone (install a CUDA build to compare)")
    chosen = workloads()
    if args.only:
        unknown = sorted(set(args.only) - set(chosen))
        if unknown:
            parser.error(f"unknown workload(s) {unknown}; available: {sorted(chosen)}")
        chosen = {name: chosen[name] for name in args.only}
    rate = gemm_rate(args.device)
    print(
        f"device {args.device}; float32 GEMM rate {rate:.1f} GFLOP/s (1024^3); "
        f"{args.rounds} interleaved rounds of ~{args.seconds} s over {args.processes} worker "
        f"pair(s); medians per step"
    )
    if args.device == "gpu":
        print(
            "TF32 off on both sides: PyTorch with torch.backends.cudnn.allow_tf32 = False and "
            "torch.backends.cuda.matmul.allow_tf32 = False, CuPy's cuBLAS GEMMs in float32 "
            "(CUPY_TF32=0); device memory: CuPy's pool against torch's max_memory_reserved"
        )
    memory_column = "dev MB g/t" if args.device == "gpu" else "RSS MB g/t"
    header = (
        f"{'':4}{'batch':>6}{'gpunet ms':>11}{'torch ms':>10}{'ratio':>7}"
        f"{'GFLOP/s':>9}{'of GEMM':>8}{memory_column:>13}  description"
    )
    print(header)
    results = []
    for name, module in chosen.items():
        batch = args.batch or module.DEFAULT_BATCH[args.device]
        result = measure(
            module, args.device, batch, frameworks, args.rounds, args.seconds, args.processes
        )
        result["gemm_gflops"] = round(rate, 1)
        result["gpunet_fraction_of_gemm"] = round(result["gpunet_gflops"] / rate, 3)
        results.append(result)
        torch_ms = f"{result['torch_ms']:.3f}" if "torch_ms" in result else "-"
        ratio = f"{result['ratio']:.2f}" if "ratio" in result else "-"
        kind = "peak_device_mb" if args.device == "gpu" else "peak_rss_mb"
        peak = "/".join(
            f"{result[f'{fw}_{kind}']:.0f}" if f"{fw}_{kind}" in result else "-"
            for fw in FRAMEWORKS
        )
        print(
            f"{name:4}{batch:>6}{result['gpunet_ms']:>11.3f}{torch_ms:>10}{ratio:>7}"
            f"{result['gpunet_gflops']:>9.1f}{result['gpunet_fraction_of_gemm']:>8.1%}"
            f"{peak:>13}  {module.DESCRIPTION}",
            flush=True,
        )
        if args.json:
            with args.json.open("a") as handle:
                handle.write(json.dumps(result) + "\n")
        if args.device == "gpu" and any(any(s.values()) for s in result["tf32"].values()):
            print(f"WARNING: TF32 was on in {result['tf32']}", flush=True)
    for result in results:
        print(json.dumps(result))
    return 0


def _torch_has_cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())
