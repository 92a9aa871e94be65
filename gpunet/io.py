"""Checkpoints: a model, its optimizer and the RNG state in one safetensors file.

Never pickle: the file is safetensors (tensors plus a string-to-string header), so loading
a checkpoint cannot run code. The tensors are host (NumPy) copies named ``model/<name>``
(``model/0.weight``) and ``optimizer/<i.key>`` (``optimizer/0.exp_avg``); the header holds
JSON: gpunet version, backend, dtype, the optimizer's name, step count and
hyper-parameters, the host RNG state, the user's metadata, a CRC-32 per tensor (over its
dtype, shape and bytes) and a CRC-32 of the header itself.

Saving is atomic (``gpunet.atomic_file``): a temporary file in the same directory,
flushed to disk and renamed over the target, so a crash or a full disk leaves either
the old checkpoint or the new one, never half of one; the temporary file of a save that
was killed is removed by the next save of the same path.

Loading is all or nothing: the whole file is verified (header and tensors against their
checksums) and every value validated as the constructors validate (shapes and dtypes of
the tensors, the optimizer's hyper-parameters, step counts, the RNG state) before the
model, the optimizer or the RNG is touched. A file that fails leaves them as they were.

What is saved of the randomness: the host NumPy generator (``gpunet.backend.host_rng``),
which draws initial weights and ``fit``'s shuffling, so resuming repeats the same order.
The device generator behind dropout masks (``gpunet.backend.random_uniform``) is NOT
saved: a model with dropout resumes with different masks than an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import sys
import zlib
from typing import Any

import numpy as np
import safetensors.numpy

from gpunet import atomic_file, backend
from gpunet.nn.layer import Layer
from gpunet.optim.optimizer import Optimizer

FORMAT = "gpunet-checkpoint"
FORMAT_VERSION = "2"
MODEL_PREFIX = "model/"
OPTIMIZER_PREFIX = "optimizer/"
HEADER_CHECKSUM = "header_checksum"


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
        TypeError: if a metadata value is not JSON-serialisable, or ``model`` or
            ``optimizer`` is not a gpunet layer or optimizer.
    """
    path = os.fspath(path)
    _check_objects("gpunet.save", model, optimizer)
    check_directory(path, "gpunet.save")
    try:
        user = json.dumps(metadata, allow_nan=False)
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
    header["checksums"] = json.dumps({key: _checksum(value) for key, value in tensors.items()})
    header[HEADER_CHECKSUM] = _header_checksum(header)
    atomic_file.write(path, safetensors.numpy.save(tensors, metadata=header))
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
        CheckpointError: for a truncated or corrupted file (header included), a file
            that is not a gpunet checkpoint, parameter names or shapes that differ (every
            mismatch listed), optimizer state that is missing, from another optimizer or
            holds values its constructor refuses (``lr = -5``). Nothing is changed
            before everything is checked: on error the model, the optimizer and the RNG
            are left as they were.
    """
    path = os.fspath(path)
    _check_objects("gpunet.load", model, optimizer)
    header, tensors = read(path)
    unknown = [k for k in tensors if not k.startswith((MODEL_PREFIX, OPTIMIZER_PREFIX))]
    if unknown:
        raise CheckpointError(f"gpunet.load: {path} holds unexpected tensors {unknown}")
    metadata = _json_field(path, header, "metadata")
    try:
        model_state = model.checked_state_dict(_strip(tensors, MODEL_PREFIX))
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"gpunet.load: {path} does not fit the model: {err}") from None
    optimizer_state = None
    if optimizer is not None:
        optimizer_state = _checked_optimizer_state(path, header, tensors, optimizer)
    rng_state = _checked_rng_state(path, header) if restore_rng else None
    # Everything is checked: from here on nothing can fail.
    model.load_state_dict(model_state)
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)
    if rng_state is not None:
        backend.set_rng_state(rng_state)
    return metadata


def read(path: str | os.PathLike) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """The header (str -> str, values JSON where structured) and NumPy tensors of a checkpoint.

    Raises:
        FileNotFoundError: if the file does not exist.
        CheckpointError: if it is not a complete, uncorrupted gpunet checkpoint: its
            header must match its checksum and every tensor its own.
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
    expected = _json_field(path, header, "checksums")
    if not isinstance(expected, dict) or set(expected) != set(tensors):
        raise CheckpointError(f"gpunet.load: {path} is corrupted: its tensor list was altered")
    for key, value in tensors.items():
        if _checksum(value) != expected[key]:
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
    if header.get(HEADER_CHECKSUM) != _header_checksum(header):
        raise CheckpointError(
            f"gpunet.load: {path} is corrupted: its header fails its checksum (the header "
            "was altered after saving)"
        )
    return header


def _host(value: Any) -> np.ndarray:
    # order="C", not ascontiguousarray, which would turn a 0-d array into 1-d.
    return np.asarray(backend.to_numpy(value), order="C")


def _checksum(array: np.ndarray) -> int:
    """CRC-32 of a tensor's dtype, shape and bytes (a reshaped tensor fails it too)."""
    described = zlib.crc32(f"{array.dtype.str}{tuple(array.shape)}".encode())
    return zlib.crc32(np.ascontiguousarray(array).reshape(-1).view(np.uint8), described)


def _header_checksum(header: dict[str, str]) -> str:
    """CRC-32 of every header entry but this checksum, in a canonical order."""
    covered = {key: value for key, value in header.items() if key != HEADER_CHECKSUM}
    return str(zlib.crc32(json.dumps(covered, sort_keys=True).encode()))


def _json_field(path: str, header: dict[str, str], key: str) -> Any:
    try:
        return json.loads(header[key])
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(
            f"gpunet.load: {path} is corrupted: header entry {key!r} is missing or not JSON"
        ) from None


def _checked_optimizer_state(
    path: str, header: dict[str, str], tensors: dict[str, np.ndarray], optimizer: Any
) -> dict[str, Any]:
    """The optimizer's state from the file, checked as its constructor checks."""
    if "optimizer" not in header:
        raise CheckpointError(
            f"gpunet.load: {path} holds no optimizer state (saved without an optimizer); "
            "load it with optimizer=None"
        )
    saved = _json_field(path, header, "optimizer")
    name = type(getattr(optimizer, "optimizer", optimizer)).__name__
    if not isinstance(saved, dict) or saved.get("optimizer") != name:
        found = saved.get("optimizer") if isinstance(saved, dict) else saved
        raise CheckpointError(f"gpunet.load: {path} holds {found} state, not {name} state")
    saved["state"] = _strip(tensors, OPTIMIZER_PREFIX)
    try:
        return optimizer.checked_state_dict(saved)
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"gpunet.load: {path} does not fit the optimizer: {err}") from None


def _checked_rng_state(path: str, header: dict[str, str]) -> dict[str, Any]:
    """The saved host RNG state, tried on a generator of the same kind first."""
    state = _json_field(path, header, "rng_state")
    try:
        type(backend.host_rng().bit_generator)().state = state
    except (ValueError, TypeError, KeyError) as err:
        raise CheckpointError(
            f"gpunet.load: {path} holds an RNG state this generator cannot take ({err!r})"
        ) from None
    return state


def _check_objects(caller: str, model: Any, optimizer: Any) -> None:
    if not isinstance(model, Layer):
        raise TypeError(f"{caller}: model must be a gpunet.nn.Layer, got {type(model).__name__}")
    if optimizer is not None and not isinstance(optimizer, Optimizer):
        raise TypeError(
            f"{caller}: optimizer must be a gpunet optimizer or None, got "
            f"{type(optimizer).__name__}"
        )


def _strip(tensors: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {key[len(prefix) :]: value for key, value in tensors.items() if key.startswith(prefix)}


def _dtype_name(array: Any) -> str:
    return str(array.dtype).rsplit(".", 1)[-1]


def _version() -> str:
    # Read at call time: gpunet/__init__ imports this module before defining __version__.
    return getattr(sys.modules.get("gpunet"), "__version__", "unknown")
