"""An exclusive lock file, so that two commands never write the same store or site at once.

``fcntl.flock`` on a hidden file: the kernel drops the lock when its holder dies (even by
``kill -9``), so a crashed command never leaves a stale lock behind. A waiter polls for at most
``timeout`` seconds and then fails with one line naming the lock. The file is removed on release;
a waiter that locked a file that was removed meanwhile simply tries again.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

from vpsbench.errors import InputError

#: How long a command waits for another one that holds the lock (seconds).
LOCK_TIMEOUT = 60.0
_POLL = 0.05


def _try_lock(fd: int) -> bool:
    """Take the exclusive lock without blocking; False if another process holds it."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no advisory locks; the atomic writes still hold
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the open file ``fd`` (the holder may have removed it)."""
    try:
        named = path.stat()
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


@contextlib.contextmanager
def exclusive_lock(path: Path, what: str, timeout: float | None = None) -> Iterator[None]:
    """Hold the lock file ``path`` (its folder must exist) for the ``with`` block.

    ``what`` names the locked thing in the error raised when another command keeps it locked
    for longer than ``timeout`` seconds (default :data:`LOCK_TIMEOUT`).
    """
    timeout = LOCK_TIMEOUT if timeout is None else timeout
    deadline = time.monotonic() + timeout
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as error:
            raise InputError(path, f"cannot create the lock file: {error.strerror}") from None
        if _try_lock(fd) and _same_file(fd, path):
            break
        os.close(fd)
        if time.monotonic() >= deadline:
            raise InputError(
                path,
                f"{what} is locked by another vpsbench command (still busy after {timeout:g} s); "
                "try again once it has finished",
            )
        time.sleep(_POLL)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)
