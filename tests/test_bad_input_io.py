"""Checkpoints are all or nothing: every corruption is refused before anything changes, and
no temporary file outlives a killed save beyond the next save of the same path."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import gpunet
from gpunet import atomic_file, backend, io
from gpunet.nn import Dense, ReLU, Sequential
from gpunet.optim import SGD, Adam

TIMEOUT_S = 120
REPOSITORY = Path(__file__).resolve().parents[1]


def mlp(hidden=8):
    return Sequential(Dense(4, hidden), ReLU(), Dense(hidden, 3))


def trained():
    model = mlp()
    optimizer = Adam(model.parameters(), lr=0.01)
    x = gpunet.asarray(np.random.default_rng(0).normal(size=(6, 4)))
    for _ in range(2):
        optimizer.zero_grad()
        model.backward(model(x) * 0 + 1)
        optimizer.step()
    return model, optimizer


def snapshot(model, optimizer):
    """Everything a load could change, as host copies."""
    weights = {k: backend.to_numpy(v).copy() for k, v in model.state_dict().items()}
    state = optimizer.state_dict()
    arrays = {k: backend.to_numpy(v).copy() for k, v in state["state"].items()}
    plain = {k: v for k, v in state.items() if k != "state"}
    return weights, arrays, json.dumps(plain), json.dumps(backend.get_rng_state())


def assert_unchanged(before, after):
    for old, new in zip(before[:2], after[:2], strict=True):
        assert old.keys() == new.keys()
        for key in old:
            np.testing.assert_array_equal(new[key], old[key], err_msg=key)
    assert before[2:] == after[2:]


def rewrite(path, target, header=None, tensors=None, keep_checksum=False):
    """Write ``path``'s checkpoint to ``target`` with its gpunet header entries changed by
    ``header(dict)`` and its safetensors tensor table by ``tensors(dict)``; the data bytes
    stay. With ``keep_checksum`` False the header checksum is recomputed, as a tool that
    knows the format would (so the values themselves are what gets checked)."""
    raw = Path(path).read_bytes()
    size = int.from_bytes(raw[:8], "little")
    table = json.loads(raw[8 : 8 + size])
    meta = table["__metadata__"]
    if header is not None:
        header(meta)
    if tensors is not None:
        tensors(table)
    if not keep_checksum:
        meta["header_checksum"] = io._header_checksum(meta)
    encoded = json.dumps(table).encode()
    encoded += b" " * (-len(encoded) % 8)
    Path(target).write_bytes(len(encoded).to_bytes(8, "little") + encoded + raw[8 + size :])
    return target


@pytest.fixture
def saved(tmp_path):
    model, optimizer = trained()
    return gpunet.save(tmp_path / "good.safetensors", model, optimizer, epoch=2)


def _set_json(key, change):
    def edit(meta):
        value = json.loads(meta[key])
        change(value)
        meta[key] = json.dumps(value)

    return edit


CORRUPTIONS = {
    "invalid JSON in the optimizer entry": (
        {"header": lambda meta: meta.update(optimizer="{not json")},
        r"header entry 'optimizer' is missing or not JSON",
    ),
    "invalid JSON in the metadata": (
        {"header": lambda meta: meta.update(metadata="[1, 2")},
        r"header entry 'metadata' is missing or not JSON",
    ),
    "a header altered without its checksum": (
        {"header": lambda meta: meta.update(dtype="float64"), "keep_checksum": True},
        r"its header fails its checksum \(the header was altered after saving\)",
    ),
    "lr = -5 in the header": (
        {"header": _set_json("optimizer", lambda o: o["hyperparameters"].update(lr=-5))},
        r"does not fit the optimizer: Adam: lr must be a finite number in \[0, inf\), got -5",
    ),
    "betas of the wrong kind": (
        {"header": _set_json("optimizer", lambda o: o["hyperparameters"].update(betas="ab"))},
        r"does not fit the optimizer: Adam: betas must be a pair",
    ),
    "a negative step count": (
        {"header": _set_json("optimizer", lambda o: o.update(step_count=-3))},
        r"does not fit the optimizer: .*step_count must be >= 0, got -3",
    ),
    "another optimizer's name": (
        {"header": _set_json("optimizer", lambda o: o.update(optimizer="SGD"))},
        r"holds SGD state, not Adam state",
    ),
    "an RNG state of another generator": (
        {"header": _set_json("rng_state", lambda r: r.update(bit_generator="MT19937"))},
        r"holds an RNG state this generator cannot take",
    ),
    "the checksum list altered": (
        {"header": lambda meta: meta.update(checksums="{}")},
        r"its tensor list was altered",
    ),
    "an older format": (
        {"header": lambda meta: meta.update(format_version="1")},
        r"has checkpoint format 1, this gpunet reads format 2",
    ),
    "a tensor's shape changed in the table": (
        {"tensors": lambda table: table["model/0.weight"].update(shape=[8, 4])},
        r"is corrupted: tensor 'model/0.weight' fails its checksum",
    ),
    "a tensor's dtype changed in the table": (
        {"tensors": lambda table: table["model/0.bias"].update(dtype="I32")},
        r"is corrupted: tensor 'model/0.bias' fails its checksum",
    ),
}


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_each_corruption_is_refused_and_changes_nothing(name, saved, tmp_path):
    changes, expected = CORRUPTIONS[name]
    bad = rewrite(saved, tmp_path / "bad.safetensors", **changes)
    gpunet.seed(11)
    model, optimizer = trained()
    before = snapshot(model, optimizer)
    with pytest.raises(io.CheckpointError, match=expected):
        gpunet.load(bad, model, optimizer)
    assert_unchanged(before, snapshot(model, optimizer))


def test_altered_tensor_bytes_are_refused_and_change_nothing(saved, tmp_path):
    raw = bytearray(Path(saved).read_bytes())
    raw[-5] ^= 0x40
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(bytes(raw))
    model, optimizer = trained()
    before = snapshot(model, optimizer)
    with pytest.raises(io.CheckpointError, match=r"is corrupted: tensor '.*' fails its checksum"):
        gpunet.load(bad, model, optimizer)
    assert_unchanged(before, snapshot(model, optimizer))


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: (mlp(hidden=5), None), r"does not fit the model: .*expected shape \(4, 5\), "
         r"got \(4, 8\)"),
        (lambda: (Sequential(Dense(4, 8)), None), r"does not fit the model: .*unexpected '2.bias'"),
        (lambda: (lambda m: (m, Adam(m.parameters()[:2])))(mlp()), r"does not fit the "
         r"optimizer: .*state '\d\.\w+' is for parameter \d, but the optimizer has 2 "
         r"parameters"),
        (lambda: (lambda m: (m, Adam(m.parameters(), amsgrad=True)))(mlp()), None),
    ],
)  # fmt: skip
def test_a_model_or_optimizer_that_does_not_fit_changes_nothing(make, expected, saved):
    model, optimizer = make()
    optimizer = optimizer or SGD(model.parameters(), lr=0.1)
    before = snapshot(model, optimizer)
    if expected is None and isinstance(optimizer, SGD):
        expected = r"holds Adam state, not SGD state"
    elif expected is None:  # the file's hyper-parameters (amsgrad=False) win: that loads
        gpunet.load(saved, model, optimizer)
        assert optimizer.amsgrad is False
        return
    with pytest.raises(io.CheckpointError, match=expected):
        gpunet.load(saved, model, optimizer)
    assert_unchanged(before, snapshot(model, optimizer))


def test_save_and_load_name_objects_of_the_wrong_kind(saved, tmp_path):
    with pytest.raises(TypeError, match=r"gpunet.save: model must be a gpunet.nn.Layer, got dict"):
        gpunet.save(tmp_path / "x.safetensors", {"w": np.zeros(2)})
    with pytest.raises(TypeError, match=r"gpunet.load: optimizer must be a gpunet optimizer"):
        gpunet.load(saved, mlp(), optimizer="adam")
    with pytest.raises(TypeError, match=r"gpunet.save: metadata must be JSON-serialisable"):
        gpunet.save(tmp_path / "x.safetensors", mlp(), loss=float("nan"))


# --------------------------------------------------------------------------- temporary files


def _kill_during_save(path: Path) -> subprocess.CompletedProcess:
    """A process that saves over ``path`` and is SIGKILLed just before the rename."""
    script = textwrap.dedent(
        f"""
        import os, signal
        import gpunet
        from gpunet.nn import Dense

        def killed(source, target):
            os.kill(os.getpid(), signal.SIGKILL)

        os.replace = killed
        gpunet.save({str(path)!r}, Dense(400, 300))
        """
    )
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=TIMEOUT_S
    )


def test_a_killed_save_leaves_the_old_checkpoint_and_the_next_save_cleans_up(saved):
    directory = Path(saved).parent
    before = Path(saved).read_bytes()
    for _ in range(3):  # each killed save removes the leftover of the one before
        run = _kill_during_save(Path(saved))
        assert run.returncode == -signal.SIGKILL, run.stderr
        leftovers = [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]
        assert len(leftovers) == 1 and leftovers[0].startswith(".good.safetensors.")
        assert (directory / leftovers[0]).stat().st_size > 400 * 300 * 4  # a full file
    assert Path(saved).read_bytes() == before  # the old checkpoint survived every kill
    gpunet.load(saved, *trained())
    gpunet.save(saved, mlp())  # the next save of the same path
    assert sorted(p.name for p in directory.iterdir()) == ["good.safetensors"]


@pytest.mark.skipif(atomic_file.fcntl is None, reason="POSIX file locks (fcntl) only")
def test_a_live_writers_temporary_file_is_left_alone(tmp_path):
    target = tmp_path / "shared.safetensors"
    live = tmp_path / ".shared.safetensors.live.tmp"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time\n"
            f"f = open({str(live)!r}, 'wb'); fcntl.flock(f, fcntl.LOCK_EX)\n"
            "print('locked', flush=True); sys.stdin.readline()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        dead = tmp_path / ".shared.safetensors.dead.tmp"
        dead.write_bytes(b"half a checkpoint")
        gpunet.save(target, mlp())
        assert live.exists() and not dead.exists()
    finally:
        holder.communicate("done\n", timeout=TIMEOUT_S)
    gpunet.save(target, mlp())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shared.safetensors"]


def test_other_paths_temporary_files_are_not_touched(saved):
    other = Path(saved).parent / ".other.safetensors.abc.tmp"
    other.write_bytes(b"someone else's")
    gpunet.save(saved, mlp())
    assert other.exists()


def test_a_failed_save_removes_its_own_temporary_file(saved, monkeypatch):
    directory = Path(saved).parent

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic_file.os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left on device"):
        gpunet.save(saved, mlp(hidden=5))
    monkeypatch.undo()
    assert sorted(p.name for p in directory.iterdir()) == ["good.safetensors"]
    assert sorted(os.listdir(directory)) == ["good.safetensors"]
