"""Atomic file writes: readers never see a half-written file; a failed write leaves no trace."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

_DEFAULT_UMASK = 0o022


def _current_umask() -> int:
    """The process umask, read without changing it (Linux ``/proc``); 0o022 where unavailable."""
    with (
        contextlib.suppress(OSError, ValueError, IndexError),
        open("/proc/self/status", encoding="ascii", errors="replace") as status,
    ):
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    return _DEFAULT_UMASK


def _target_mode(target: Path) -> int:
    """Permission bits for the new file: those of the file it replaces, else what ``open`` gives."""
    try:
        return target.stat().st_mode & 0o7777
    except OSError:
        return 0o666 & ~_current_umask()


def _fsync_directory(directory: Path) -> None:
    """Flush a directory entry to disk so that a rename survives a crash (best effort, POSIX)."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str | Path) -> Iterator[BinaryIO]:
    """Yield a binary file that replaces ``path`` only once the ``with`` block succeeds.

    The data goes to a hidden temporary file in the target's directory (created if needed); on
    success it is fsynced and renamed onto ``path`` with ``os.replace``, which is atomic on POSIX
    and Windows. On any exception the temporary file is deleted, the target is left untouched and
    the exception propagates.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, _target_mode(target))
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    _fsync_directory(target.parent)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_write(path) as handle:
        handle.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically as UTF-8 (newlines are written as given)."""
    atomic_write_bytes(path, text.encode("utf-8"))
