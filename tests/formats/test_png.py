"""Tests of bit-exact PNG reading/writing and of the detection of damaged files."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from vpsbench.errors import InputError
from vpsbench.formats.png import read_png, read_png_header, write_png


def _chunk(kind: bytes, body: bytes) -> bytes:
    """One PNG chunk with its CRC."""
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _raw_png(rows: list[bytes], width: int, bit_depth: int, color_type: int) -> bytes:
    """A minimal PNG built by hand from unfiltered rows (for formats Pillow cannot write)."""
    header = struct.pack(">IIBBBBB", width, len(rows), bit_depth, color_type, 0, 0, 0)
    data = zlib.compress(b"".join(b"\x00" + row for row in rows))
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", data)
        + _chunk(b"IEND", b"")
    )


def _valid_png_bytes(tmp_path: Path) -> bytes:
    """Bytes of a valid, reasonably large 8-bit PNG."""
    rng = np.random.default_rng(7)
    path = tmp_path / "valid.png"
    write_png(path, rng.integers(0, 5, (40, 50), dtype=np.uint8))
    return path.read_bytes()


@pytest.mark.parametrize(
    ("dtype", "shape", "high"),
    [
        (np.uint8, (7, 11), 256),
        (np.uint8, (5, 9, 3), 256),
        (np.uint16, (6, 13), 65536),
    ],
)
def test_round_trip_is_bit_exact(
    tmp_path: Path, dtype: type, shape: tuple[int, ...], high: int
) -> None:
    rng = np.random.default_rng(0)
    array: np.ndarray = rng.integers(0, high, shape).astype(dtype)
    array.flat[0], array.flat[-1] = 0, high - 1
    path = tmp_path / "x.png"
    write_png(path, array)
    back = read_png(path)
    assert back.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(back, array)


def test_rewrite_gives_identical_bytes(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    arrays: list[np.ndarray] = [
        rng.integers(0, 256, (9, 10), dtype=np.uint8),
        rng.integers(0, 256, (9, 10, 3), dtype=np.uint8),
        rng.integers(0, 65536, (9, 10), dtype=np.uint16),
    ]
    for index, array in enumerate(arrays):
        first, second = tmp_path / f"a{index}.png", tmp_path / f"b{index}.png"
        write_png(first, array)
        write_png(second, read_png(first))
        assert first.read_bytes() == second.read_bytes()


def test_sixteen_bit_is_written_as_16_bit_gray(tmp_path: Path) -> None:
    path = tmp_path / "x.png"
    write_png(path, np.array([[0, 1, 65535]], dtype=np.uint16))
    header = read_png_header(path)
    assert (header.bit_depth, header.color_type) == (16, 0)
    with Image.open(path) as image:
        assert image.mode == "I;16"


def test_non_contiguous_and_big_endian_input(tmp_path: Path) -> None:
    base = np.arange(60, dtype=np.uint16).reshape(6, 10) * 1000
    view = base[::2, ::3]
    big_endian = view.astype(">u2")
    write_png(tmp_path / "a.png", view)
    write_png(tmp_path / "b.png", big_endian)
    np.testing.assert_array_equal(read_png(tmp_path / "a.png"), view)
    np.testing.assert_array_equal(read_png(tmp_path / "b.png"), view)


def test_palette_gives_raw_indices(tmp_path: Path) -> None:
    indices = np.array([[0, 1, 2], [3, 2, 1]], dtype=np.uint8)
    image = Image.fromarray(indices).convert("P")
    image.putdata(indices.ravel().tolist())
    image.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9])
    path = tmp_path / "p.png"
    image.save(path)
    back = read_png(path)
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, indices)


def test_rgba_drops_alpha(tmp_path: Path) -> None:
    rgba = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / "rgba.png"
    Image.fromarray(rgba).save(path)
    np.testing.assert_array_equal(read_png(path), rgba[:, :, :3])


def test_big_endian_16_bit_from_other_writers(tmp_path: Path) -> None:
    values = np.array([[0, 258, 65535], [1000, 13005, 7]], dtype=">u2")
    path = tmp_path / "g16.png"
    path.write_bytes(_raw_png([row.tobytes() for row in values], 3, 16, 0))
    back = read_png(path)
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, values.astype(np.uint16))


def test_sixteen_bit_rgb_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "rgb16.png"
    path.write_bytes(_raw_png([bytes(12)], 2, 16, 2))
    with pytest.raises(InputError, match=r"rgb16\.png: 16-bit RGB PNG is not supported"):
        read_png(path)


def _assert_one_line_error(path: Path) -> InputError:
    """Read ``path`` expecting an InputError whose one-line message names the file."""
    with pytest.raises(InputError) as info:
        read_png(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert "\n" not in message
    return info.value


def test_missing_file(tmp_path: Path) -> None:
    error = _assert_one_line_error(tmp_path / "absent.png")
    assert error.problem == "file not found"


def test_directory_instead_of_file(tmp_path: Path) -> None:
    (tmp_path / "dir.png").mkdir()
    _assert_one_line_error(tmp_path / "dir.png")


@pytest.mark.parametrize("payload", [b"", b"hello, not a png", b"\xff\xd8\xff\xe0JFIF"])
def test_not_a_png(tmp_path: Path, payload: bytes) -> None:
    path = tmp_path / "fake.png"
    path.write_bytes(payload)
    _assert_one_line_error(path)


@pytest.mark.parametrize("keep", [4, 8, 20, 33, 60, -40, -12, -1])
def test_truncated_png(tmp_path: Path, keep: int) -> None:
    data = _valid_png_bytes(tmp_path)
    path = tmp_path / "cut.png"
    path.write_bytes(data[:keep])
    error = _assert_one_line_error(path)
    assert "truncated" in error.problem or "signature" in error.problem


def test_flipped_bits_in_pixel_data_are_detected(tmp_path: Path) -> None:
    data = _valid_png_bytes(tmp_path)
    rng = np.random.default_rng(3)
    path = tmp_path / "flipped.png"
    for _ in range(40):
        corrupt = bytearray(data)
        position = int(rng.integers(41, len(data) - 12))
        corrupt[position] ^= 1 << int(rng.integers(0, 8))
        path.write_bytes(bytes(corrupt))
        _assert_one_line_error(path)


def test_reading_sets_no_global_pillow_state(tmp_path: Path) -> None:
    before = ImageFile.LOAD_TRUNCATED_IMAGES
    path = tmp_path / "cut.png"
    path.write_bytes(_valid_png_bytes(tmp_path)[:-30])
    with pytest.raises(InputError):
        read_png(path)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is before


@pytest.mark.parametrize(
    "array",
    [
        np.zeros((3, 4), dtype=np.int32),
        np.zeros((3, 4), dtype=np.float32),
        np.zeros((3, 4), dtype=bool),
        np.zeros((3, 4, 4), dtype=np.uint8),
        np.zeros((3, 4, 3), dtype=np.uint16),
        np.zeros((0, 4), dtype=np.uint8),
        np.zeros((4,), dtype=np.uint8),
    ],
)
def test_write_rejects_other_arrays(tmp_path: Path, array: np.ndarray) -> None:
    path = tmp_path / "bad.png"
    with pytest.raises(ValueError, match="PNG"):
        write_png(path, array)
    assert not path.exists()
