"""Atomic file writes: readers never see a half-written file; a failed write leaves no trace."""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from vpsbench.errors import InputError

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


class AtomicWriteError(InputError, OSError):
    """The target of an atomic write cannot be written (a folder, below a file, no permission)."""


def _temp_prefix(target: Path) -> str:
    """Temporary names are ``.<name>.<pid>.<random>.tmp``: the pid tells a dead writer's files."""
    return f".{target.name}.{os.getpid()}."


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def _remove_stale_temps(target: Path) -> None:
    """Delete temporary files of ``target`` left by writers killed before they could clean up."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        for leftover in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
            pid_text = leftover.name[len(target.name) + 2 :].split(".", 1)[0]
            if pid_text.isdigit() and not _process_alive(int(pid_text)):
                with contextlib.suppress(OSError):
                    leftover.unlink()


_CLEANUP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)


@contextlib.contextmanager
def _signals_exit() -> Iterator[None]:
    """Within the block, SIGTERM/SIGHUP (left at their default: die) exit via ``SystemExit``.

    The exit status is the shell's 128 + signal number, and every ``finally`` and ``except
    BaseException`` on the way out runs, so temporary files are removed. Only in the main
    thread and only for signals nobody else handles; the old handlers are back afterwards.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous: dict[int, Any] = {}
    for signum in _CLEANUP_SIGNALS:
        with contextlib.suppress(ValueError, OSError):
            if signal.getsignal(signum) == signal.SIG_DFL:
                previous[signum] = signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


@contextlib.contextmanager
def atomic_write(path: str | Path, *, durable: bool = True) -> Iterator[BinaryIO]:
    """Yield a binary file that replaces ``path`` only once the ``with`` block succeeds.

    The data goes to a hidden temporary file in the target's directory (created if needed); on
    success it is fsynced (unless ``durable`` is off: a scratch file that need not survive a
    power cut) and renamed onto ``path`` with ``os.replace``, which is atomic on POSIX
    and Windows. On any exception, and on SIGTERM/SIGHUP, the temporary file is deleted, the
    target is left untouched and the exception (or signal) propagates; leftovers of writers
    killed outright (SIGKILL) are removed by the next write to the same target. A target that
    cannot be written is an :class:`AtomicWriteError` naming it.
    """
    target = Path(path)
    try:
        if target.is_dir():
            raise IsADirectoryError(errno.EISDIR, "is a folder, not a file")
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temps(target)
        fd, tmp_name = tempfile.mkstemp(
            dir=target.parent, prefix=_temp_prefix(target), suffix=".tmp"
        )
    except OSError as error:
        raise AtomicWriteError(target, f"cannot write here: {error.strerror or error}") from None
    with _signals_exit():
        try:
            with os.fdopen(fd, "wb") as handle:
                yield handle
                handle.flush()
                if durable:
                    os.fsync(handle.fileno())
            os.chmod(tmp_name, _target_mode(target))
            os.replace(tmp_name, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
            raise
    if durable:
        _fsync_directory(target.parent)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_write(path) as handle:
        handle.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically as UTF-8 (newlines are written as given)."""
    atomic_write_bytes(path, text.encode("utf-8"))
