"""Tests of atomic writes: success replaces the target, failure leaves no trace."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from vpsbench.formats.atomic import atomic_write, atomic_write_bytes, atomic_write_text


class _BoomError(RuntimeError):
    """Raised on purpose inside a write."""


def test_write_bytes_creates_parents(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "out.bin"
    atomic_write_bytes(target, b"\x00\x01payload")
    assert target.read_bytes() == b"\x00\x01payload"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.bin"]


def test_write_text_is_utf8(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    atomic_write_text(target, "straße\n")
    assert target.read_bytes() == "straße\n".encode()


def test_overwrite_replaces_content(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    atomic_write_bytes(target, b"old content that is longer")
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"


def test_exception_leaves_no_target_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    with pytest.raises(_BoomError), atomic_write(target) as handle:
        handle.write(b"partial")
        raise _BoomError
    assert list(tmp_path.iterdir()) == []


def test_exception_leaves_existing_target_untouched(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"original")
    with pytest.raises(_BoomError), atomic_write(target) as handle:
        handle.write(b"replacement")
        raise _BoomError
    assert target.read_bytes() == b"original"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_target_invisible_until_block_ends(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    with atomic_write(target) as handle:
        handle.write(b"data")
        handle.flush()
        assert not target.exists()
    assert target.read_bytes() == b"data"


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_new_file_gets_umask_permissions(tmp_path: Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    target = tmp_path / "out.bin"
    atomic_write_bytes(target, b"x")
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_existing_permissions_are_kept(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    target.chmod(0o640)
    atomic_write_bytes(target, b"new")
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


@pytest.mark.parametrize(("durable", "syncs"), [(True, 2), (False, 0)])
def test_only_a_durable_write_is_fsynced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, durable: bool, syncs: int
) -> None:
    calls: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append(fd) or real_fsync(fd))
    target = tmp_path / "stats.npz"
    with atomic_write(target, durable=durable) as handle:
        handle.write(b"abc")
    assert target.read_bytes() == b"abc"
    assert len(calls) == syncs  # the file and its folder, or neither
