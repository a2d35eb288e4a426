"""Tests of frames stored as ``.npz`` archives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vpsbench.errors import InputError
from vpsbench.formats.npz import read_npz, write_npz
from vpsbench.video import PanopticFrame


def _frame() -> PanopticFrame:
    rng = np.random.default_rng(41)
    semantic = rng.integers(-1, 2000, (11, 17))
    instance = rng.integers(0, 100000, (11, 17))
    return PanopticFrame.from_arrays(semantic, instance)


def test_round_trip_and_deterministic_bytes(tmp_path: Path) -> None:
    frame = _frame()
    first, second = tmp_path / "a.npz", tmp_path / "b.npz"
    write_npz(first, frame)
    back = read_npz(first)
    assert back.semantic.dtype == np.int32 and back.instance.dtype == np.int32
    np.testing.assert_array_equal(back.semantic, frame.semantic)
    np.testing.assert_array_equal(back.instance, frame.instance)
    write_npz(second, back)
    assert first.read_bytes() == second.read_bytes()


def test_written_file_is_a_standard_npz(tmp_path: Path) -> None:
    path = tmp_path / "a.npz"
    write_npz(path, _frame())
    with np.load(path) as archive:
        assert sorted(archive.files) == ["instance", "semantic"]
        assert archive["semantic"].dtype == np.int32


def test_reads_numpy_savez_output(tmp_path: Path) -> None:
    path = tmp_path / "pred.npz"
    np.savez_compressed(
        path, semantic=np.array([[1, 2]], np.int64), instance=np.zeros((1, 2), np.uint16)
    )
    frame = read_npz(path)
    np.testing.assert_array_equal(frame.semantic, [[1, 2]])


def _expect(path: Path, message: str) -> None:
    with pytest.raises(InputError, match=rf"{path.name}: .*{message}"):
        read_npz(path)


def test_missing_key(tmp_path: Path) -> None:
    path = tmp_path / "nokey.npz"
    np.savez(path, semantic=np.zeros((2, 2), np.int32))
    _expect(path, "missing array 'instance'")


def test_wrong_ndim_dtype_and_shape(tmp_path: Path) -> None:
    ndim = tmp_path / "ndim.npz"
    np.savez(ndim, semantic=np.zeros((2, 2, 1), np.int32), instance=np.zeros((2, 2), np.int32))
    _expect(ndim, "'semantic' must be 2-D")
    dtype = tmp_path / "dtype.npz"
    np.savez(dtype, semantic=np.zeros((2, 2), np.float32), instance=np.zeros((2, 2), np.int32))
    _expect(dtype, "'semantic' must have an integer dtype")
    shape = tmp_path / "shape.npz"
    np.savez(shape, semantic=np.zeros((2, 2), np.int32), instance=np.zeros((2, 3), np.int32))
    _expect(shape, r"semantic shape \(2, 2\) != instance shape \(2, 3\)")
    overflow = tmp_path / "overflow.npz"
    np.savez(overflow, semantic=np.full((1, 1), 2**40), instance=np.zeros((1, 1), np.int32))
    _expect(overflow, "outside the int32 range")


def test_corrupt_and_foreign_files(tmp_path: Path) -> None:
    good = tmp_path / "good.npz"
    write_npz(good, _frame())
    data = good.read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    _expect(truncated, "corrupt or unreadable")
    flipped = tmp_path / "flipped.npz"
    corrupt = bytearray(data)
    corrupt[len(data) // 3] ^= 0xFF
    flipped.write_bytes(bytes(corrupt))
    _expect(flipped, "corrupt or unreadable")
    text = tmp_path / "text.npz"
    text.write_text("hello")
    _expect(text, "corrupt or unreadable")
    npy = tmp_path / "single.npz"
    with npy.open("wb") as handle:
        np.save(handle, np.zeros((2, 2), np.int32))
    _expect(npy, "not an .npz archive")
    _expect(tmp_path / "absent.npz", "file not found")
