"""Tests of the KITTI-STEP / DeepLab2 panoptic PNG codec."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vpsbench.errors import InputError
from vpsbench.formats.png import write_png
from vpsbench.formats.step import decode_step, encode_step, read_step_png, write_step_png
from vpsbench.video import PanopticFrame


def test_hand_built_step_png_decodes_to_known_values(tmp_path: Path) -> None:
    rgb = np.zeros((2, 2, 3), dtype=np.uint8)
    rgb[:, :] = (13, 1, 2)
    rgb[1, 1] = (255, 0, 0)
    path = tmp_path / "000000.png"
    write_png(path, rgb)
    frame = read_step_png(path)
    np.testing.assert_array_equal(frame.semantic, [[13, 13], [13, 255]])
    np.testing.assert_array_equal(frame.instance, [[258, 258], [258, 0]])
    assert frame.semantic.dtype == np.int32
    assert frame.instance.dtype == np.int32


def test_encode_packs_channels() -> None:
    frame = PanopticFrame.from_arrays([[11, 0]], [[65535, 0]])
    np.testing.assert_array_equal(encode_step(frame), [[[11, 255, 255], [0, 0, 0]]])


def test_random_round_trip_and_stable_bytes(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    frame = PanopticFrame.from_arrays(
        rng.integers(0, 256, (17, 23)), rng.integers(0, 65536, (17, 23))
    )
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    write_step_png(first, frame)
    back = read_step_png(first)
    np.testing.assert_array_equal(back.semantic, frame.semantic)
    np.testing.assert_array_equal(back.instance, frame.instance)
    write_step_png(second, back)
    assert first.read_bytes() == second.read_bytes()
    np.testing.assert_array_equal(decode_step(encode_step(frame)).instance, frame.instance)


@pytest.mark.parametrize(
    ("semantic", "instance", "what"),
    [(256, 0, "semantic value 256"), (-1, 0, "semantic value -1"), (3, 65536, "instance")],
)
def test_encode_rejects_out_of_range(semantic: int, instance: int, what: str) -> None:
    frame = PanopticFrame.from_arrays([[semantic]], [[instance]])
    with pytest.raises(ValueError, match=what):
        encode_step(frame)


def test_write_overflow_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "overflow.png"
    frame = PanopticFrame.from_arrays([[13, 13]], [[1, 70000]])
    with pytest.raises(InputError, match=r"overflow\.png: instance value 70000"):
        write_step_png(path, frame)
    assert not path.exists()


def test_gray_png_is_not_a_step_png(tmp_path: Path) -> None:
    path = tmp_path / "gray.png"
    write_png(path, np.zeros((3, 3), dtype=np.uint8))
    with pytest.raises(InputError, match=r"gray\.png: expected an 8-bit RGB STEP PNG"):
        read_step_png(path)


def test_truncated_step_png(tmp_path: Path) -> None:
    path = tmp_path / "cut.png"
    write_png(path, np.full((20, 20, 3), 7, dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(InputError, match=r"cut\.png: truncated"):
        read_step_png(path)


def test_decode_rejects_non_rgb() -> None:
    with pytest.raises(ValueError, match="uint8"):
        decode_step(np.zeros((2, 2, 3), dtype=np.uint16))
    with pytest.raises(ValueError, match="uint8"):
        decode_step(np.zeros((2, 2), dtype=np.uint8))
