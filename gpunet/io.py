"""Checkpoints: a model, its optimizer and the RNG state in one safetensors file.

Never pickle: the file is safetensors (tensors plus a string-to-string header), so loading
a checkpoint cannot run code. The tensors are host (NumPy) copies named ``model/<name>``
(``model/0.weight``) and ``optimizer/<i.key>`` (``optimizer/0.exp_avg``); the header holds
JSON: gpunet version, backend, dtype, the optimizer's name, step count and
hyper-parameters, the host RNG state, a CRC-32 per tensor and the user's metadata.

A checkpoint is written to a temporary file in the same directory, flushed to disk and
renamed over the target (``os.replace``, atomic on POSIX and Windows), so a crash or a
full disk leaves either the old checkpoint or the new one, never half of one.

What is saved of the randomness: the host NumPy generator (``gpunet.backend.host_rng``),
which draws initial weights and ``fit``'s shuffling, so resuming repeats the same order.
The device generator behind dropout masks (``gpunet.backend.random_uniform``) is NOT
saved: a model with dropout resumes with different masks than an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import zlib
from typing import Any

import numpy as np
import safetensors.numpy

from gpunet import backend

FORMAT = "gpunet-checkpoint"
FORMAT_VERSION = "1"
MODEL_PREFIX = "model/"
OPTIMIZER_PREFIX = "optimizer/"


class CheckpointError(ValueError):
    """A file that is not a readable gpunet checkpoint, or one that does not fit."""


def save(path: str | os.PathLike, model: Any, optimizer: Any = None, **metadata: Any) -> str:
    """Write ``model`` (and ``optimizer``) to a safetensors checkpoint, atomically.

    Args:
        path: the file to write (conventionally ``*.safetensors``); its directory must
            exist. An existing file is replaced only once the new one is complete.
        model: a ``gpunet.nn.Layer``; its parameters and buffers are saved.
        optimizer: an optimizer whose state (moments, step count, hyper-parameters) is
            saved too (default None).
        **metadata: JSON-serialisable values stored in the header and returned by
            ``load`` (``epoch=3``, ``val_loss=0.12``).

    Returns:
        The path written.

    Raises:
        FileNotFoundError: if the directory does not exist.
        TypeError: if a metadata value is not JSON-serialisable.
    """
    path = os.fspath(path)
    check_directory(path, "gpunet.save")
    try:
        user = json.dumps(metadata)
    except (TypeError, ValueError) as err:
        raise TypeError(f"gpunet.save: metadata must be JSON-serialisable ({err})") from None
    state = model.state_dict()
    tensors = {MODEL_PREFIX + name: _host(value) for name, value in state.items()}
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "gpunet_version": _version(),
        "backend": backend.name(),
        "dtype": _dtype_name(next(iter(state.values()))) if state else "",
        "rng_state": json.dumps(backend.get_rng_state()),
        "metadata": user,
    }
    if optimizer is not None:
        optimizer_state = optimizer.state_dict()
        tensors.update(
            {
                OPTIMIZER_PREFIX + key: _host(value)
                for key, value in optimizer_state["state"].items()
            }
        )
        header["optimizer"] = json.dumps(
            {
                "optimizer": optimizer_state["optimizer"],
                "step_count": optimizer_state["step_count"],
                "hyperparameters": optimizer_state["hyperparameters"],
            }
        )
    header["checksums"] = json.dumps({key: _crc32(value) for key, value in tensors.items()})
    _atomic_write(path, safetensors.numpy.save(tensors, metadata=header))
    return path


def load(
    path: str | os.PathLike, model: Any, optimizer: Any = None, *, restore_rng: bool = True
) -> dict[str, Any]:
    """Load a checkpoint written by ``save`` into ``model`` (and ``optimizer``).

    Works across backends and dtypes: the arrays are moved onto the current backend in
    the dtype of the model's parameters.

    Args:
        path: the checkpoint file.
        model: a model with the same parameter names and shapes.
        optimizer: an optimizer of the same class over ``model.parameters()`` to restore
            (default None: the optimizer state in the file is ignored).
        restore_rng: also restore the host RNG state, so shuffling continues as if
            training had never stopped (default True).

    Returns:
        The user metadata given to ``save``.

    Raises:
        FileNotFoundError: if the file does not exist.
        CheckpointError: for a truncated or corrupted file, a file that is not a gpunet
            checkpoint, parameter names or shapes that differ (every mismatch listed), or
            optimizer state that is missing or from another optimizer. On error the
            model and optimizer are left as they were.
    """
    path = os.fspath(path)
    header, tensors = read(path)
    model_state = _strip(tensors, MODEL_PREFIX)
    optimizer_state = None
    if optimizer is not None:
        if "optimizer" not in header:
            raise CheckpointError(
                f"gpunet.load: {path} holds no optimizer state (saved without an optimizer); "
                "load it with optimizer=None"
            )
        optimizer_state = json.loads(header["optimizer"])
        name = type(optimizer).__name__
        if optimizer_state["optimizer"] != name:
            raise CheckpointError(
                f"gpunet.load: {path} holds {optimizer_state['optimizer']} state, not {name} state"
            )
        optimizer_state["state"] = _strip(tensors, OPTIMIZER_PREFIX)
    previous = dict(model.state_dict())
    try:
        model.load_state_dict(model_state)
    except ValueError as err:
        raise CheckpointError(f"gpunet.load: {path} does not fit the model: {err}") from None
    if optimizer_state is not None:
        try:
            optimizer.load_state_dict(optimizer_state)
        except ValueError as err:
            model.load_state_dict(previous)
            raise CheckpointError(
                f"gpunet.load: {path} does not fit the optimizer: {err}"
            ) from None
    if restore_rng:
        backend.set_rng_state(json.loads(header["rng_state"]))
    return json.loads(header["metadata"])


def read(path: str | os.PathLike) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """The header (str -> str, values JSON where structured) and NumPy tensors of a checkpoint.

    Raises:
        FileNotFoundError: if the file does not exist.
        CheckpointError: if it is not a complete, uncorrupted gpunet checkpoint.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"gpunet.load: no checkpoint at {path}")
    with open(path, "rb") as file:
        data = file.read()
    header = _header(path, data)
    try:
        tensors = safetensors.numpy.load(data)
    except Exception as err:  # SafetensorError: truncated data, bad offsets, ...
        raise CheckpointError(f"gpunet.load: {path} is truncated or corrupted ({err})") from None
    expected = json.loads(header.get("checksums", "{}"))
    if set(expected) != set(tensors):
        raise CheckpointError(f"gpunet.load: {path} is corrupted: its tensor list was altered")
    for key, value in tensors.items():
        if _crc32(value) != expected[key]:
            raise CheckpointError(
                f"gpunet.load: {path} is corrupted: tensor {key!r} fails its checksum"
            )
    return header, tensors


def check_directory(path: str | os.PathLike, caller: str) -> None:
    """Raise now, not after training, if ``path`` cannot be written.

    Raises:
        FileNotFoundError: if the directory of ``path`` does not exist.
        PermissionError: if it is not writable.
    """
    directory = os.path.dirname(os.path.abspath(os.fspath(path)))
    if not os.path.isdir(directory):
        raise FileNotFoundError(
            f"{caller}: directory {directory} does not exist (for {os.fspath(path)}); "
            "create it first"
        )
    if not os.access(directory, os.W_OK):
        raise PermissionError(f"{caller}: directory {directory} is not writable")


def _header(path: str, data: bytes) -> dict[str, str]:
    not_safetensors = f"gpunet.load: {path} is not a gpunet checkpoint (not a safetensors file"
    if len(data) < 8:
        raise CheckpointError(f"{not_safetensors}: only {len(data)} bytes)")
    size = int.from_bytes(data[:8], "little")
    if size > len(data) - 8:
        raise CheckpointError(
            f"{not_safetensors}, or truncated: the header needs {size} bytes, "
            f"{len(data) - 8} follow)"
        )
    try:
        raw = json.loads(data[8 : 8 + size])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError(f"{not_safetensors}: its header is not JSON)") from None
    header = raw.get("__metadata__") if isinstance(raw, dict) else None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CheckpointError(
            f"gpunet.load: {path} is a safetensors file but not a gpunet checkpoint "
            "(no gpunet header); read plain weights with safetensors.numpy.load_file and "
            "model.load_state_dict"
        )
    if header.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"gpunet.load: {path} has checkpoint format {header.get('format_version')}, "
            f"this gpunet reads format {FORMAT_VERSION}"
        )
    return header


def _atomic_write(path: str, payload: bytes) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(
        prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory
    )
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o644)  # mkstemp makes it 0600
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    # Makes the rename itself durable on POSIX; Windows cannot open directories.
    if sys.platform == "win32":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _host(value: Any) -> np.ndarray:
    # order="C", not ascontiguousarray, which would turn a 0-d array into 1-d.
    return np.asarray(backend.to_numpy(value), order="C")


def _crc32(array: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(array).reshape(-1).view(np.uint8))


def _strip(tensors: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {key[len(prefix) :]: value for key, value in tensors.items() if key.startswith(prefix)}


def _dtype_name(array: Any) -> str:
    return str(array.dtype).rsplit(".", 1)[-1]


def _version() -> str:
    # Read at call time: gpunet/__init__ imports this module before defining __version__.
    return getattr(sys.modules.get("gpunet"), "__version__", "unknown")
