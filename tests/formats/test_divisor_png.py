"""Tests of the Waymo-style divisor PNG and of plain single-channel label PNGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vpsbench.errors import InputError
from vpsbench.formats.divisor_png import (
    read_divisor_png,
    read_label_png,
    write_divisor_png,
    write_label_png,
)
from vpsbench.formats.png import read_png_header, write_png
from vpsbench.video import PanopticFrame


def test_known_values(tmp_path: Path) -> None:
    path = tmp_path / "FRONT.png"
    write_png(path, np.array([[0, 13005, 65535], [2000, 7, 28001]], dtype=np.uint16))
    frame = read_divisor_png(path)
    np.testing.assert_array_equal(frame.semantic, [[0, 13, 65], [2, 0, 28]])
    np.testing.assert_array_equal(frame.instance, [[0, 5, 535], [0, 7, 1]])


def test_other_divisor(tmp_path: Path) -> None:
    path = tmp_path / "x.png"
    write_png(path, np.array([[256 * 3 + 4]], dtype=np.uint16))
    frame = read_divisor_png(path, divisor=256)
    assert (frame.semantic[0, 0], frame.instance[0, 0]) == (3, 4)


def test_round_trip_and_stable_bytes(tmp_path: Path) -> None:
    rng = np.random.default_rng(31)
    frame = PanopticFrame.from_arrays(
        rng.integers(0, 29, (13, 21)), rng.integers(0, 1000, (13, 21))
    )
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    write_divisor_png(first, frame)
    header = read_png_header(first)
    assert (header.bit_depth, header.color_type) == (16, 0)
    back = read_divisor_png(first)
    np.testing.assert_array_equal(back.semantic, frame.semantic)
    np.testing.assert_array_equal(back.instance, frame.instance)
    write_divisor_png(second, back)
    assert first.read_bytes() == second.read_bytes()


@pytest.mark.parametrize(
    ("semantic", "instance", "message"),
    [
        (3, 1000, "instance id 1000 does not fit divisor 1000"),
        (66, 0, "exceeds the 16-bit maximum"),
        (65, 536, "exceeds the 16-bit maximum"),
        (-1, 0, "negative"),
    ],
)
def test_write_overflow_names_the_file(
    tmp_path: Path, semantic: int, instance: int, message: str
) -> None:
    path = tmp_path / "overflow.png"
    with pytest.raises(InputError, match=rf"overflow\.png: .*{message}"):
        write_divisor_png(path, PanopticFrame.from_arrays([[semantic]], [[instance]]))
    assert not path.exists()


def test_bad_divisor() -> None:
    with pytest.raises(ValueError, match="divisor"):
        read_divisor_png("unused.png", divisor=0)


def test_rgb_is_not_a_divisor_png(tmp_path: Path) -> None:
    path = tmp_path / "rgb.png"
    write_png(path, np.zeros((2, 2, 3), dtype=np.uint8))
    with pytest.raises(InputError, match=r"rgb\.png: expected a single-channel label PNG"):
        read_divisor_png(path)


@pytest.mark.parametrize(("bits", "high"), [(8, 256), (16, 65536)])
def test_label_png_round_trip(tmp_path: Path, bits: int, high: int) -> None:
    rng = np.random.default_rng(bits)
    labels = rng.integers(0, high, (7, 9)).astype(np.int64)
    path = tmp_path / "labels.png"
    write_label_png(path, labels, bits=bits)
    assert read_png_header(path).bit_depth == bits
    back = read_label_png(path)
    assert back.dtype == np.int32
    np.testing.assert_array_equal(back, labels)


def test_label_png_errors(tmp_path: Path) -> None:
    path = tmp_path / "num_cameras_covered.png"
    with pytest.raises(InputError, match=r"num_cameras_covered\.png: label values 0\.\.256"):
        write_label_png(path, np.array([[0, 256]]), bits=8)
    with pytest.raises(ValueError, match="bits"):
        write_label_png(path, np.array([[0]]), bits=12)
    with pytest.raises(ValueError, match="2-D integer"):
        write_label_png(path, np.zeros((2, 2), dtype=np.float64))
    assert not path.exists()
    with pytest.raises(InputError, match=r"missing\.png: file not found"):
        read_label_png(tmp_path / "missing.png")
