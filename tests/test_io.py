"""Checkpoints: round trip, exact resume, portability, and every way a file can be bad."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy

import gpunet
from gpunet import backend, io
from gpunet.losses import CrossEntropy
from gpunet.nn import Dense, ReLU, Sequential
from gpunet.optim import SGD, Adam


def mlp(hidden=8):
    return Sequential(Dense(4, hidden), ReLU(), Dense(hidden, 3))


def weights(model):
    return {name: backend.to_numpy(value).copy() for name, value in model.state_dict().items()}


def data(rng, n=40):
    x = rng.normal(size=(n, 4))
    return x, (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0)


def trained(rng, optimizer_class=SGD, **options):
    model = mlp()
    optimizer = optimizer_class(model.parameters(), lr=0.05, **options)
    gpunet.fit(model, CrossEntropy(), optimizer, *data(rng), epochs=1, batch_size=8, verbose=0)
    return model, optimizer


def test_round_trip_restores_weights_optimizer_and_metadata(rng, tmp_path):
    model, optimizer = trained(rng, Adam)
    path = gpunet.save(tmp_path / "m.safetensors", model, optimizer, epoch=3, note="best")
    assert path == str(tmp_path / "m.safetensors")
    fresh = mlp()
    fresh_optimizer = Adam(fresh.parameters(), lr=0.5)
    assert gpunet.load(path, fresh, fresh_optimizer) == {"epoch": 3, "note": "best"}
    for name, value in weights(model).items():
        np.testing.assert_array_equal(weights(fresh)[name], value, err_msg=name)
    assert fresh_optimizer.lr == 0.05 and fresh_optimizer.step_count == optimizer.step_count == 5
    assert fresh_optimizer.betas == (0.9, 0.999)
    saved = optimizer.state_dict()["state"]
    for key, value in fresh_optimizer.state_dict()["state"].items():
        np.testing.assert_array_equal(backend.to_numpy(value), backend.to_numpy(saved[key]))


def test_header_records_version_backend_dtype_and_steps(rng, tmp_path):
    model, optimizer = trained(rng)
    gpunet.save(tmp_path / "m.safetensors", model, optimizer)
    header, tensors = io.read(tmp_path / "m.safetensors")
    assert header["format"] == "gpunet-checkpoint"
    assert header["gpunet_version"] == gpunet.__version__
    assert header["backend"] == backend.name()
    assert header["dtype"] == "float32"
    assert json.loads(header["optimizer"])["step_count"] == 5
    model_keys = {"model/0.weight", "model/0.bias", "model/2.weight", "model/2.bias"}
    assert set(tensors) == model_keys | {f"optimizer/{i}.step" for i in range(4)}
    assert int(tensors["optimizer/0.step"]) == 5 and tensors["optimizer/0.step"].shape == ()


@pytest.mark.parametrize(
    ("optimizer_class", "options"), [(SGD, {"momentum": 0.9}), (Adam, {})], ids=["sgd", "adam"]
)
def test_resume_equals_uninterrupted_training(rng, tmp_path, optimizer_class, options):
    """2 epochs, save, load into fresh objects, 2 more == 4 straight: identical weights."""
    x, y = data(rng, n=50)

    def run(model, optimizer, epochs, initial_epoch=0):
        gpunet.fit(
            model,
            CrossEntropy(),
            optimizer,
            x,
            y,
            epochs=epochs,
            batch_size=8,
            initial_epoch=initial_epoch,
            verbose=0,
            validation_split=0.2,
        )

    backend.seed(11)
    straight = mlp()
    run(straight, optimizer_class(straight.parameters(), lr=0.05, **options), 4)

    backend.seed(11)
    first = mlp()
    first_optimizer = optimizer_class(first.parameters(), lr=0.05, **options)
    run(first, first_optimizer, 2)
    gpunet.save(tmp_path / "resume.safetensors", first, first_optimizer, epoch=1)
    backend.host_rng().random(7)  # the process goes on drawing before it dies

    resumed = mlp()  # fresh initial weights, another RNG state
    resumed_optimizer = optimizer_class(resumed.parameters(), lr=0.5, **options)
    meta = gpunet.load(tmp_path / "resume.safetensors", resumed, resumed_optimizer)
    run(resumed, resumed_optimizer, 4, initial_epoch=meta["epoch"] + 1)
    for name, value in weights(straight).items():
        np.testing.assert_array_equal(weights(resumed)[name], value, err_msg=name)


def test_load_restores_the_rng_state_unless_told_not_to(rng, tmp_path):
    model = mlp()
    gpunet.save(tmp_path / "m.safetensors", model)
    expected = backend.host_rng().random(3)
    gpunet.load(tmp_path / "m.safetensors", model)
    np.testing.assert_array_equal(backend.host_rng().random(3), expected)
    following = backend.host_rng().bit_generator.state
    gpunet.load(tmp_path / "m.safetensors", model, restore_rng=False)
    assert backend.host_rng().bit_generator.state == following


def test_checkpoint_loads_on_another_backend_and_dtype(rng, tmp_path):
    model, _ = trained(rng)
    gpunet.save(tmp_path / "m.safetensors", model)
    with backend.using("numpy"):
        other = mlp().astype("float64")
        gpunet.load(tmp_path / "m.safetensors", other)
        loaded = {name: value for name, value in other.state_dict().items()}
    for name, value in weights(model).items():
        assert isinstance(loaded[name], np.ndarray) and loaded[name].dtype == np.float64
        np.testing.assert_array_equal(loaded[name], value.astype(np.float64))


def test_mismatched_model_lists_every_mismatch_and_changes_nothing(rng, tmp_path):
    model, _ = trained(rng)
    gpunet.save(tmp_path / "m.safetensors", model)
    other = Sequential(Dense(4, 9), ReLU(), Dense(9, 3), ReLU(), Dense(3, 2))
    before = weights(other)
    with pytest.raises(io.CheckpointError) as error:
        gpunet.load(tmp_path / "m.safetensors", other)
    message = str(error.value)
    assert message.startswith(f"gpunet.load: {tmp_path / 'm.safetensors'} does not fit the model")
    for part in (
        "missing '4.weight'",
        "missing '4.bias'",
        "'0.weight': expected shape (4, 9), got (4, 8)",
        "'0.bias': expected shape (9,), got (8,)",
        "'2.weight': expected shape (9, 3), got (8, 3)",
    ):
        assert part in message
    for name, value in weights(other).items():
        np.testing.assert_array_equal(value, before[name])


def test_optimizer_state_that_does_not_fit_is_refused(rng, tmp_path):
    model, optimizer = trained(rng, SGD, momentum=0.9)
    gpunet.save(tmp_path / "plain.safetensors", model)
    gpunet.save(tmp_path / "sgd.safetensors", model, optimizer)
    fresh = mlp()
    before = weights(fresh)
    with pytest.raises(io.CheckpointError, match="holds no optimizer state"):
        gpunet.load(tmp_path / "plain.safetensors", fresh, SGD(fresh.parameters(), lr=0.1))
    with pytest.raises(io.CheckpointError, match="holds SGD state, not Adam state"):
        gpunet.load(tmp_path / "sgd.safetensors", fresh, Adam(fresh.parameters()))
    for name, value in weights(fresh).items():
        np.testing.assert_array_equal(value, before[name])


# --------------------------------------------------------------------------- bad files


@pytest.fixture
def checkpoint(rng, tmp_path):
    model, optimizer = trained(rng)
    return gpunet.save(tmp_path / "good.safetensors", model, optimizer)


def test_truncated_file_is_refused(checkpoint, tmp_path):
    raw = Path(checkpoint).read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(raw[:-10])
    with pytest.raises(io.CheckpointError, match="cut.safetensors is truncated or corrupted"):
        gpunet.load(cut, mlp())
    cut.write_bytes(raw[:100])
    with pytest.raises(io.CheckpointError, match="or truncated: the header needs"):
        gpunet.load(cut, mlp())


def test_corrupted_tensor_bytes_fail_the_checksum(checkpoint, tmp_path):
    raw = bytearray(Path(checkpoint).read_bytes())
    raw[-3] ^= 0xFF  # a byte of the last tensor's data
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(bytes(raw))
    with pytest.raises(io.CheckpointError, match=r"is corrupted: tensor '.*' fails its checksum"):
        gpunet.load(bad, mlp())


def test_files_that_are_not_gpunet_checkpoints_are_refused(tmp_path):
    plain = tmp_path / "plain.safetensors"
    safetensors.numpy.save_file({"0.weight": np.zeros((4, 8), np.float32)}, str(plain))
    with pytest.raises(
        io.CheckpointError, match=r"is a safetensors file but not a gpunet checkpoint"
    ):
        gpunet.load(plain, mlp())
    text = tmp_path / "notes.txt"
    text.write_text("hello, this is not a checkpoint")
    with pytest.raises(
        io.CheckpointError, match=r"is not a gpunet checkpoint \(not a safetensors file"
    ):
        gpunet.load(text, mlp())
    with pytest.raises(FileNotFoundError, match="gpunet.load: no checkpoint at"):
        gpunet.load(tmp_path / "missing.safetensors", mlp())


def test_save_into_a_missing_directory_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"gpunet.save: directory .*nowhere does not exist"):
        gpunet.save(tmp_path / "nowhere" / "m.safetensors", mlp())


def test_failed_save_keeps_the_existing_checkpoint(checkpoint, monkeypatch):
    before = Path(checkpoint).read_bytes()
    directory = os.path.dirname(checkpoint)

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(io.os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left on device"):
        gpunet.save(checkpoint, mlp(hidden=5))
    monkeypatch.undo()
    with pytest.raises(TypeError, match="gpunet.save: metadata must be JSON-serialisable"):
        gpunet.save(checkpoint, mlp(hidden=5), when=object())
    assert Path(checkpoint).read_bytes() == before
    assert os.listdir(directory) == ["good.safetensors"]  # no temporary file left behind
    gpunet.load(checkpoint, mlp())  # still a good checkpoint


def test_save_replaces_an_existing_checkpoint_atomically(checkpoint):
    model = mlp()
    gpunet.save(checkpoint, model, version=2)
    assert gpunet.load(checkpoint, mlp()) == {"version": 2}
    assert sorted(os.listdir(os.path.dirname(checkpoint))) == ["good.safetensors"]
    assert oct(os.stat(checkpoint).st_mode & 0o777) == oct(0o644)
