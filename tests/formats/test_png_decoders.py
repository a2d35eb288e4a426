"""The libspng fast path of ``read_png`` gives the very samples that were encoded, as Pillow does.

PNGs are encoded here by hand (every row filter, several IDAT chunks, ancillary chunks that a
decoder must not apply: gAMA, sRGB, tRNS, tEXt) so the expected array is known independently
of any decoder; each is read through the fast path and through the Pillow path.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from vpsbench.errors import InputError
from vpsbench.formats import png

pytestmark = pytest.mark.skipif(png.pyspng is None, reason="pyspng is not installed")


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def _filter_row(kind: int, row: bytes, previous: bytes, bpp: int) -> bytes:
    """Apply PNG filter ``kind`` (0 none, 1 sub, 2 up, 3 average, 4 Paeth) to one row."""
    out = bytearray()
    for i, x in enumerate(row):
        a = row[i - bpp] if i >= bpp else 0
        b = previous[i]
        c = previous[i - bpp] if i >= bpp else 0
        predictor = (0, a, b, (a + b) // 2, _paeth(a, b, c))[kind]
        out.append((x - predictor) % 256)
    return bytes([kind]) + bytes(out)


def encode_png(array: np.ndarray, rng: np.random.Generator, extra: list[bytes]) -> bytes:
    """A valid 8-bit gray or RGB PNG of ``array`` with random filters and IDAT splits."""
    height, width = array.shape[:2]
    color_type, bpp = (2, 3) if array.ndim == 3 else (0, 1)
    previous = bytes(width * bpp)
    filtered = b""
    for row in array.reshape(height, width * bpp):
        raw = row.tobytes()
        filtered += _filter_row(int(rng.integers(0, 5)), raw, previous, bpp)
        previous = raw
    stream = zlib.compress(filtered, int(rng.integers(0, 10)))
    cuts = sorted(rng.integers(0, len(stream), int(rng.integers(0, 4))).tolist())
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return (
        png.PNG_SIGNATURE
        + _chunk(b"IHDR", header)
        + b"".join(extra)
        + b"".join(_chunk(b"IDAT", piece) for piece in pieces)
        + _chunk(b"IEND", b"")
    )


def label_like(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Blocky label-map values with some noise, plus the extremes 0 and 255."""
    blocks = rng.integers(0, 256, (shape[0] // 4 + 1, shape[1] // 5 + 1, *shape[2:]))
    array = np.repeat(np.repeat(blocks, 4, axis=0), 5, axis=1)[: shape[0], : shape[1]]
    noise = rng.random(shape) < 0.05
    array[noise] = rng.integers(0, 256, int(noise.sum()))
    array.flat[0], array.flat[-1] = 0, 255
    return array.astype(np.uint8)


ANCILLARY = {
    "none": [],
    "gamma-srgb-text": [
        _chunk(b"gAMA", struct.pack(">I", 100000)),
        _chunk(b"sRGB", b"\x00"),
        _chunk(b"tEXt", b"Comment\x00label map"),
    ],
}


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (9, 1), (13, 29), (64, 37), (5, 6, 3)])
@pytest.mark.parametrize("ancillary", sorted(ANCILLARY))
@pytest.mark.parametrize("seed", [0, 1])
def test_fast_and_pillow_paths_decode_the_encoded_samples(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    shape: tuple[int, ...],
    ancillary: str,
    seed: int,
) -> None:
    rng = np.random.default_rng(seed)
    for channels in ((), (3,)):
        full_shape = (*shape[:2], *channels)
        expected = label_like(rng, full_shape)
        extra = list(ANCILLARY[ancillary])
        if ancillary != "none":  # a transparent colour must not add an alpha channel
            samples = expected.reshape(-1)[: 3 if channels else 1].tolist()
            extra.append(_chunk(b"tRNS", struct.pack(f">{len(samples)}H", *samples)))
        path = tmp_path / f"{len(channels)}.png"
        path.write_bytes(encode_png(expected, rng, extra))
        fast = png.read_png(path)
        with monkeypatch.context() as patch:
            patch.setattr(png, "pyspng", None)
            slow = png.read_png(path)
        assert fast.dtype == slow.dtype == np.uint8
        np.testing.assert_array_equal(fast, expected)
        np.testing.assert_array_equal(slow, expected)


def test_written_files_read_back_through_the_fast_path(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    for shape in ((31, 17), (31, 17, 3)):
        expected = label_like(rng, shape)
        png.write_png(tmp_path / "a.png", expected)
        np.testing.assert_array_equal(png.read_png(tmp_path / "a.png"), expected)


@pytest.mark.parametrize("damage", ["short-stream", "bad-filter", "long-stream"])
def test_damaged_pixel_data_is_an_input_error_on_the_fast_path(tmp_path: Path, damage: str) -> None:
    """IDAT chunks with valid CRCs but too little data or a bad filter byte: a one-line error.

    (Data left over after the last row is ignored, as Pillow does. Pillow itself zero-fills a
    stream that ends early, so the fast path is the stricter of the two there.)
    """
    width, height = 12, 10
    rows = np.arange(width * height * 3, dtype=np.uint8).reshape(height, width * 3)
    filtered = b"".join(b"\x00" + row.tobytes() for row in rows)
    if damage == "bad-filter":
        filtered = b"\x07" + filtered[1:]
    stream = zlib.compress(filtered)
    if damage == "short-stream":
        stream = zlib.compress(filtered[: len(filtered) // 2])
    if damage == "long-stream":
        stream = zlib.compress(filtered + bytes(500))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = png.PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", stream)
    path = tmp_path / "damaged.png"
    path.write_bytes(data + _chunk(b"IEND", b""))
    if damage == "long-stream":
        np.testing.assert_array_equal(png.read_png(path), rows.reshape(height, width, 3))
        return
    with pytest.raises(InputError) as error:
        png.read_png(path)
    assert "\n" not in str(error.value) and str(path) in str(error.value)
