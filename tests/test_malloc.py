"""``import gpunet`` keeps freed arrays' memory in the process (glibc's malloc)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)

# Four 4 MiB arrays made and freed, ten times: without tuning glibc gives their 16 MiB
# back to the kernel each time (a heap top above its trim threshold) and takes it again
# page by page.
FAULTS = """
import resource
import gpunet, numpy as np
from gpunet import _malloc
def cycle():
    arrays = [np.ones(1 << 20, dtype=np.float32) for _ in range(4)]
    del arrays
cycle()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    cycle()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 10)
print(_malloc.status)
"""


def _faults_per_cycle(**env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    clean.pop("GLIBC_TUNABLES", None)
    clean.update(env)
    out = subprocess.run(
        [sys.executable, "-c", FAULTS], env=clean, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    return int(out[0]), out[1]


def test_freed_arrays_stay_in_the_process():
    faults, status = _faults_per_cycle()
    assert status.startswith("glibc, blocks up to 32 MiB from the heap")
    assert faults < 100  # 4096 pages of 4 KiB would come back every cycle otherwise


def test_a_malloc_setting_in_the_environment_is_kept():
    # glibc's own default trim threshold, set by the user: gpunet leaves malloc alone,
    # and the memory goes back and forth
    faults, status = _faults_per_cycle(MALLOC_TRIM_THRESHOLD_="131072")
    assert status == "left as it is (tuned by the environment)"
    assert faults > 1000
