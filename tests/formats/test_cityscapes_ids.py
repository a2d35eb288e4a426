"""Tests of the Cityscapes ``*_gtFine_instanceIds.png`` decoder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vpsbench.errors import InputError
from vpsbench.formats.cityscapes_ids import (
    decode_cityscapes_instance_ids,
    read_cityscapes_instance_ids,
)
from vpsbench.formats.png import write_png


def test_decode_known_values() -> None:
    values = np.array([[7, 24, 26000], [26005, 33000, 0]], dtype=np.uint16)
    frame = decode_cityscapes_instance_ids(values)
    np.testing.assert_array_equal(frame.semantic, [[7, 24, 26], [26, 33, 0]])
    np.testing.assert_array_equal(frame.instance, [[0, 0, 1], [6, 1, 0]])


def test_read_16_bit_png(tmp_path: Path) -> None:
    path = tmp_path / "frankfurt_000000_000294_gtFine_instanceIds.png"
    write_png(path, np.array([[11, 24001], [26999, 21]], dtype=np.uint16))
    frame = read_cityscapes_instance_ids(path)
    np.testing.assert_array_equal(frame.semantic, [[11, 24], [26, 21]])
    np.testing.assert_array_equal(frame.instance, [[0, 2], [1000, 0]])


def test_rgb_png_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "color.png"
    write_png(path, np.zeros((2, 2, 3), dtype=np.uint8))
    with pytest.raises(InputError, match=r"color\.png: expected a 16-bit grayscale instanceIds"):
        read_cityscapes_instance_ids(path)


def test_decode_rejects_bad_arrays() -> None:
    with pytest.raises(ValueError, match="2-D integer"):
        decode_cityscapes_instance_ids(np.zeros((2, 2, 3), dtype=np.uint16))
    with pytest.raises(ValueError, match="non-negative"):
        decode_cityscapes_instance_ids(np.array([[-1]]))
