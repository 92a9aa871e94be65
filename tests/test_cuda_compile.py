"""Every CUDA kernel compiles to PTX for the argument types it is launched with, with or
without a GPU; float32 kernels hold no float64 instruction and the 32-bit index builds
no 64-bit division.

The families are found, not listed: every module of ``gpunet.kernels`` with a
``cuda_kernels()`` (``_cuda.cuda_families``), each declaring with ``cuda_signatures``
the exact argument types its wrappers launch each kernel with (the simulator tests in
tests/test_cuda_kernels.py check every launch against them).

The simulator runs the kernels as Python, so it cannot catch what only the CUDA compiler
rejects (the CUDA target built into numba 0.66+ fails on a two-argument ``max``, for
one; numba-cuda 0.30 does not), nor what the compiled code does with the types (a
float64 literal turns float32 arithmetic into float64; Numba types integer arithmetic
at 64 bits, so a plain ``//`` on an index is a 64-bit division). This test types and
lowers each kernel for compute capability 9.0. Without a GPU, the one driver query on
that path (the current device's compute capability, asked when an ``@njit`` helper is
compiled as a device function) is answered with 9.0.
"""

from __future__ import annotations

import os
import re

import pytest

pytestmark = [
    pytest.mark.skipif(
        os.environ.get("NUMBA_ENABLE_CUDASIM") == "1",
        reason="compiles real PTX; the simulator session runs the kernels instead",
    ),
    pytest.mark.skipif(
        os.environ.get("GPUNET_BACKEND", "numpy") not in ("numpy", "cupy"),
        reason="the kernels are compiled once, in the numpy (or cupy) session",
    ),
]

CAPABILITY = (9, 0)
# An instruction on float64 values: add.f64, fma.rn.f64, cvt.f64.f32, ld.global.f64, ...
FLOAT64 = re.compile(r"\.f64(\.|$)")
# A 64-bit integer division or remainder: div.s64, rem.u64, ...
DIVISION64 = re.compile(r"^(div|rem)\.([a-z]+\.)*[su]64$")


class _Device:
    compute_capability = CAPABILITY


def _empty_kernel(values):
    pass


@pytest.fixture(scope="module")
def cuda():
    cuda = pytest.importorskip("numba.cuda")
    from numba import types

    with pytest.MonkeyPatch.context() as patch:
        if not cuda.is_available():
            dispatcher = pytest.importorskip("numba.cuda.dispatcher")
            if not hasattr(dispatcher, "get_current_device"):
                pytest.skip("this numba.cuda asks the driver elsewhere: run it on a GPU")
            patch.setattr(dispatcher, "get_current_device", _Device)
        try:
            cuda.compile_ptx(_empty_kernel, (types.float32[::1],), cc=CAPABILITY)
        except Exception as err:  # no NVVM: neither a CUDA toolkit nor numba-cuda's wheels
            text = f"{type(err).__name__} {err}".lower()
            if "nvvm" not in text and "libdevice" not in text:
                raise
            reason = str(err).strip().splitlines()[0]
            pytest.skip(f"no NVVM to compile PTX with ({reason}): pip install 'gpunet[cuda12]'")
        yield cuda


def _families():
    from gpunet.kernels import _cuda

    return _cuda.cuda_families()


def opcodes(ptx: str) -> list[str]:
    """The opcode of each instruction of a PTX listing (predicates dropped)."""
    found = []
    for line in ptx.splitlines():
        text = line.split("//")[0].strip()
        if not text or text.startswith((".", "{", "}", ")")) or text.endswith((":", ",")):
            continue
        if text.startswith("@"):
            text = text.split(None, 1)[1]
        found.append(text.split()[0].rstrip(";"))
    return found


def test_opcodes_reads_ptx_instructions():
    listing = """
    .reg .f64 %fd<3>;
    $L__BB0_2:
    @%p1 bra $L__BB0_4;
    cvt.rn.f32.f64 %f1, %fd1;
    div.u32 %r3, %r1, %r2;
    rem.s64 %rd3, %rd1, %rd2;  // a comment
    ret;
    """
    found = opcodes(listing)
    assert found == ["bra", "cvt.rn.f32.f64", "div.u32", "rem.s64", "ret"]
    assert [op for op in found if FLOAT64.search(op)] == ["cvt.rn.f32.f64"]
    assert [op for op in found if DIVISION64.match(op)] == ["rem.s64"]


def test_every_family_declares_the_types_of_each_kernel(cuda):
    from numba import types

    families = _families()
    assert {"conv", "pool", "optim"} <= set(families)
    for name, family in families.items():
        kernels = set(family.cuda_kernels())
        for dtype in (types.float32, types.float64):
            assert set(family.cuda_signatures(dtype)) == kernels, name


@pytest.mark.parametrize("dtype_name", ["float32", "float64"])
def test_every_kernel_compiles_to_clean_ptx(cuda, dtype_name):
    """PTX for the run-time types; no float64 in float32 kernels; 32-bit index division."""
    from gpunet.kernels._cuda import WIDE
    from numba import types

    dtype = getattr(types, dtype_name)
    failures = {}
    for family_name, family in sorted(_families().items()):
        signatures = family.cuda_signatures(dtype)
        for name, kernel in sorted(family.cuda_kernels().items()):
            label = f"{family_name}.{name}"
            try:
                ptx, _ = cuda.compile_ptx(kernel.py_func, signatures[name], cc=CAPABILITY)
            except Exception as err:  # noqa: BLE001 - each failure is reported by name
                failures[label] = f"{type(err).__name__}: {str(err).splitlines()[0]}"
                continue
            found = opcodes(ptx)
            float64 = sorted({op for op in found if FLOAT64.search(op)})
            division64 = sorted({op for op in found if DIVISION64.match(op)})
            problems = []
            if ".entry" not in ptx:
                problems.append("no kernel entry in the PTX")
            if dtype_name == "float32" and float64:
                problems.append(f"float64 instructions {float64}")
            if not name.endswith(WIDE) and division64:
                problems.append(f"64-bit index division {division64}")
            if problems:
                failures[label] = "; ".join(problems)
    assert failures == {}
