"""Writing a file all at once, so a crash leaves the old file or the new one, never half.

``write(path, payload)`` writes to a temporary file beside ``path`` (``.NAME.*.tmp``),
flushes it to disk and renames it over ``path`` (``os.replace``, atomic on POSIX and
Windows), then makes the rename durable.

A writer that is killed (SIGKILL, power loss) leaves its temporary file behind. The next
``write`` of the same path removes such leftovers: each writer holds an exclusive lock
(``flock``) on its temporary file until the rename, the operating system drops the lock
of a process that died, so a temporary file whose lock can be taken belongs to a dead
writer; a live writer's file (another process saving the same path) is left alone. On
systems without ``fcntl`` (Windows) a file still open by its writer cannot be deleted,
which serves the same purpose.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None


def write(path: str, payload: bytes) -> None:
    """Write ``payload`` to ``path`` atomically (see the module docstring).

    Raises:
        OSError: when writing fails; ``path`` is then unchanged and the temporary file
            removed.
    """
    directory = os.path.dirname(os.path.abspath(path))
    prefix = f".{os.path.basename(path)}."
    remove_leftovers(directory, prefix)
    file, temporary = _locked_temporary(directory, prefix)
    try:
        file.write(payload)
        file.flush()
        os.fsync(file.fileno())
        os.chmod(temporary, 0o644)  # mkstemp makes it 0600
        if fcntl is None:
            file.close()  # Windows renames no file that is open
        os.replace(temporary, path)  # under the lock: no cleaner may take the file first
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    finally:
        file.close()
    _fsync_directory(directory)


def remove_leftovers(directory: str, prefix: str) -> list[str]:
    """Remove the temporary files ``prefix*.tmp`` of writers that died; returns them."""
    removed = []
    for name in sorted(os.listdir(directory)):
        if name.startswith(prefix) and name.endswith(".tmp"):
            candidate = os.path.join(directory, name)
            if _remove_if_abandoned(candidate):
                removed.append(candidate)
    return removed


def _remove_if_abandoned(candidate: str) -> bool:
    if fcntl is None:
        try:
            os.unlink(candidate)  # refused while its writer holds it open
        except OSError:
            return False
        return True
    try:
        fd = os.open(candidate, os.O_RDONLY)
    except OSError:  # renamed or removed meanwhile
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # a live writer holds it
        os.close(fd)
        return False
    try:
        if _same_file(fd, candidate):
            os.unlink(candidate)
            return True
        return False
    except OSError:
        return False
    finally:
        os.close(fd)  # releases the lock


def _locked_temporary(directory: str, prefix: str) -> tuple[object, str]:
    """A new temporary file, open for writing and locked, and its path."""
    while True:
        fd, temporary = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=directory)
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
            # Another writer's cleanup may have taken the file between its creation and
            # the lock (it was not locked yet); then start again with a new one.
            if not _same_file(fd, temporary):
                os.close(fd)
                continue
        return os.fdopen(fd, "wb"), temporary


def _same_file(fd: int, path: str) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _fsync_directory(directory: str) -> None:
    # Makes the rename itself durable on POSIX; Windows cannot open directories.
    if sys.platform == "win32":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
