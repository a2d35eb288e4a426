"""Tests of the MOTS text (RLE) and 16-bit PNG codecs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from vpsbench.errors import InputError
from vpsbench.formats.mots import (
    MotsObject,
    frame_to_mots_objects,
    mots_objects_to_frame,
    read_mots_png,
    read_mots_txt,
    rle_counts,
    write_mots_png,
    write_mots_txt,
)
from vpsbench.formats.png import write_png
from vpsbench.video import PanopticFrame

H, W = 6, 8


def _rle(mask: np.ndarray) -> str:
    """The pycocotools compressed RLE string of a boolean mask."""
    encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return str(encoded["counts"].decode("ascii"))


def _masks() -> dict[int, np.ndarray]:
    """Three disjoint masks on an HxW image: car 1000, pedestrian 2005, ignore 10000."""
    car = np.zeros((H, W), dtype=bool)
    car[1:3, 1:5] = True
    pedestrian = np.zeros((H, W), dtype=bool)
    pedestrian[3:6, 6:8] = True
    ignore = np.zeros((H, W), dtype=bool)
    ignore[5, 0:3] = True
    return {1000: car, 2005: pedestrian, 10000: ignore}


def _line(time: int, obj_id: int, class_id: int, mask: np.ndarray) -> str:
    return f"{time} {obj_id} {class_id} {mask.shape[0]} {mask.shape[1]} {_rle(mask)}\n"


def _sample_txt(path: Path) -> None:
    masks = _masks()
    text = (
        _line(0, 1000, 1, masks[1000])
        + _line(0, 2005, 2, masks[2005])
        + "\n"
        + _line(0, 10000, 10, masks[10000])
        + _line(3, 2005, 2, masks[1000])
    )
    path.write_text(text)


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_read_txt_gives_the_encoded_masks(tmp_path: Path) -> None:
    path = tmp_path / "0002.txt"
    _sample_txt(path)
    objects = read_mots_txt(path)
    assert sorted(objects) == [0, 3]
    assert [(o.obj_id, o.class_id, o.height, o.width) for o in objects[0]] == [
        (1000, 1, H, W),
        (2005, 2, H, W),
        (10000, 10, H, W),
    ]
    for obj in objects[0]:
        decoded = mask_utils.decode({"size": [H, W], "counts": obj.rle.encode()})
        np.testing.assert_array_equal(decoded.astype(bool), _masks()[obj.obj_id])


def test_objects_to_frame_known_values(tmp_path: Path) -> None:
    path = tmp_path / "0002.txt"
    _sample_txt(path)
    masks = _masks()
    frame = mots_objects_to_frame(read_mots_txt(path)[0], H, W)
    expected_semantic = np.zeros((H, W), dtype=np.int32)
    expected_instance = np.zeros((H, W), dtype=np.int32)
    expected_semantic[masks[1000]], expected_instance[masks[1000]] = 1, 1  # k = 0 -> instance 1
    expected_semantic[masks[2005]], expected_instance[masks[2005]] = 2, 6
    expected_semantic[masks[10000]] = 10
    np.testing.assert_array_equal(frame.semantic, expected_semantic)
    np.testing.assert_array_equal(frame.instance, expected_instance)


def test_frame_to_objects_is_the_inverse(tmp_path: Path) -> None:
    path = tmp_path / "0002.txt"
    _sample_txt(path)
    objects = read_mots_txt(path)[0]
    frame = mots_objects_to_frame(objects, H, W)
    assert frame_to_mots_objects(frame, 0) == sorted(objects, key=lambda o: o.obj_id)


def _random_frame(rng: np.random.Generator, shape: tuple[int, int]) -> PanopticFrame:
    """Background, cars, pedestrians and an ignore region with random instance ids."""
    semantic = rng.choice([0, 0, 1, 2, 10], size=shape)
    instance = np.where(np.isin(semantic, [1, 2]), rng.integers(1, 1001, shape), 0)
    return PanopticFrame.from_arrays(semantic, instance)


def test_txt_round_trip_reproduces_bytes(tmp_path: Path) -> None:
    rng = np.random.default_rng(21)
    frames = {t: _random_frame(rng, (9, 14)) for t in (0, 1, 5)}
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    write_mots_txt(first, frames)
    objects = read_mots_txt(first)
    assert sorted(objects) == [0, 1, 5]
    back = {t: mots_objects_to_frame(objs, 9, 14, source=str(first)) for t, objs in objects.items()}
    for t, frame in frames.items():
        np.testing.assert_array_equal(back[t].semantic, frame.semantic)
        np.testing.assert_array_equal(back[t].instance, frame.instance)
    write_mots_txt(second, back)
    assert first.read_bytes() == second.read_bytes()
    times = [int(line.split()[0]) for line in first.read_text().splitlines()]
    assert times == sorted(times)


def test_rle_counts_matches_pycocotools() -> None:
    rng = np.random.default_rng(22)
    for _ in range(50):
        height, width = (int(v) for v in rng.integers(1, 40, 2))
        mask = rng.random((height, width)) < rng.random()
        counts = rle_counts(_rle(mask), height * width)
        flat = np.repeat(np.arange(len(counts)) % 2, counts).astype(bool)
        np.testing.assert_array_equal(flat.reshape(width, height).T, mask)


@pytest.mark.parametrize("rle", ["", "1", "999", "0\x7f", "PP", "00000000000000000001"])
def test_rle_counts_rejects_malformed(rle: str) -> None:
    with pytest.raises(ValueError):
        rle_counts(rle, 20)


def _write_lines(path: Path, *lines: str) -> Path:
    path.write_text("".join(lines))
    return path


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("0 1001 1 6 8\n", "expected 6 fields, got 5"),
        ("0 1001 1 6 8 ab cd\n", "expected 6 fields, got 7"),
        ("0 1x01 1 6 8 XYZ\n", "expected a non-negative integer, got '1x01'"),
        ("-1 1001 1 6 8 XYZ\n", "expected a non-negative integer, got '-1'"),
        ("0 1001 1 0 8 XYZ\n", "invalid image size 0x8"),
        ("0 1001 1 6 8 5\n", "invalid RLE"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path: Path, bad_line: str, message: str) -> None:
    good = _line(0, 1000, 1, _masks()[1000])
    path = _write_lines(tmp_path / "0005.txt", good, "\n", bad_line)
    with pytest.raises(InputError, match=rf"0005\.txt:3: {message}"):
        read_mots_txt(path)


def test_overlapping_masks(tmp_path: Path) -> None:
    masks = _masks()
    overlapping = masks[1000].copy()
    overlapping[2, 4:7] = True
    path = _write_lines(
        tmp_path / "0009.txt",
        _line(4, 1000, 1, masks[1000]),
        _line(4, 2001, 2, masks[2005]),
        _line(4, 1003, 1, overlapping),
    )
    with pytest.raises(InputError, match=r"0009\.txt:3: mask of object 1003 overlaps object 1000"):
        read_mots_txt(path)


def test_same_mask_at_different_times_is_fine(tmp_path: Path) -> None:
    mask = _masks()[1000]
    path = _write_lines(tmp_path / "ok.txt", _line(0, 1000, 1, mask), _line(1, 1000, 1, mask))
    assert [len(v) for v in read_mots_txt(path).values()] == [1, 1]


def test_duplicate_object_id(tmp_path: Path) -> None:
    masks = _masks()
    path = _write_lines(
        tmp_path / "0011.txt", _line(7, 2005, 2, masks[2005]), _line(7, 2005, 2, masks[1000])
    )
    with pytest.raises(InputError, match=r"0011\.txt:2: object id 2005 appears twice at time 7"):
        read_mots_txt(path)


def test_sizes_must_agree_within_a_frame(tmp_path: Path) -> None:
    other = np.zeros((H + 1, W), dtype=bool)
    other[0, 0] = True
    path = _write_lines(
        tmp_path / "size.txt", _line(0, 1000, 1, _masks()[1000]), _line(0, 1001, 1, other)
    )
    with pytest.raises(InputError, match=r"size\.txt:2: image size 7x8 differs from 6x8"):
        read_mots_txt(path)


def test_missing_and_binary_txt(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"absent\.txt: file not found"):
        read_mots_txt(tmp_path / "absent.txt")
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\x89PNG\r\n")
    with pytest.raises(InputError, match=r"binary\.txt: not an ASCII text file"):
        read_mots_txt(binary)


def test_objects_to_frame_errors_name_the_source() -> None:
    mask = _masks()[1000]
    car = MotsObject(0, 1005, 1, H, W, _rle(mask))
    clash = MotsObject(0, 2005, 1, H, W, _rle(_masks()[2005]))
    with pytest.raises(InputError, match=r"^seq\.txt: object 2005 at time 0 and object 1005"):
        mots_objects_to_frame([car, clash], H, W, source="seq.txt")
    with pytest.raises(InputError, match=r"^seq\.txt: object 1005 at time 0 has size 6x8"):
        mots_objects_to_frame([car], H + 1, W, source="seq.txt")
    with pytest.raises(InputError, match="overlap"):
        mots_objects_to_frame([car, MotsObject(0, 2001, 2, H, W, _rle(mask))], H, W)
    with pytest.raises(InputError, match="class 0"):
        mots_objects_to_frame([MotsObject(0, 5, 0, H, W, _rle(mask))], H, W)


@pytest.mark.parametrize(
    ("semantic", "instance", "message"),
    [
        (1, 1001, "instance id above 1000"),
        (1, 0, "without instance id"),
        (0, 3, "class 0"),
        (10, 2, "class 10"),
        (-1, 0, "negative class"),
    ],
)
def test_frame_to_objects_rejects_unencodable(semantic: int, instance: int, message: str) -> None:
    frame = PanopticFrame.from_arrays([[semantic, 0]], [[instance, 0]])
    with pytest.raises(ValueError, match=message):
        frame_to_mots_objects(frame, 0)


def test_write_txt_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    with pytest.raises(InputError, match=r"out\.txt: time 2: .*instance id above 1000"):
        write_mots_txt(path, {2: PanopticFrame.from_arrays([[1]], [[5000]])})
    assert not path.exists()


def test_png_known_values(tmp_path: Path) -> None:
    path = tmp_path / "000000.png"
    write_png(path, np.array([[0, 1000, 2005], [10000, 1999, 2000]], dtype=np.uint16))
    frame = read_mots_png(path)
    np.testing.assert_array_equal(frame.semantic, [[0, 1, 2], [10, 1, 2]])
    np.testing.assert_array_equal(frame.instance, [[0, 1, 6], [0, 1000, 1]])


def test_png_round_trip_and_stable_bytes(tmp_path: Path) -> None:
    rng = np.random.default_rng(23)
    frame = _random_frame(rng, (12, 15))
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    write_mots_png(first, frame)
    back = read_mots_png(first)
    np.testing.assert_array_equal(back.semantic, frame.semantic)
    np.testing.assert_array_equal(back.instance, frame.instance)
    write_mots_png(second, back)
    assert first.read_bytes() == second.read_bytes()


def test_png_and_txt_agree(tmp_path: Path) -> None:
    rng = np.random.default_rng(24)
    frame = _random_frame(rng, (10, 11))
    write_mots_png(tmp_path / "f.png", frame)
    write_mots_txt(tmp_path / "f.txt", {0: frame})
    from_txt = mots_objects_to_frame(read_mots_txt(tmp_path / "f.txt")[0], 10, 11)
    from_png = read_mots_png(tmp_path / "f.png")
    np.testing.assert_array_equal(from_txt.semantic, from_png.semantic)
    np.testing.assert_array_equal(from_txt.instance, from_png.instance)


@pytest.mark.parametrize(
    ("semantic", "instance", "message"),
    [(1, 1001, "instance id above 1000"), (66, 1, "> 65535"), (2, 0, "without instance")],
)
def test_png_write_overflow_names_the_file(
    tmp_path: Path, semantic: int, instance: int, message: str
) -> None:
    path = tmp_path / "overflow.png"
    with pytest.raises(InputError, match=rf"overflow\.png: .*{message}"):
        write_mots_png(path, PanopticFrame.from_arrays([[semantic]], [[instance]]))
    assert not path.exists()


def test_png_read_errors(tmp_path: Path) -> None:
    eight_bit = tmp_path / "eight.png"
    write_png(eight_bit, np.zeros((2, 2), dtype=np.uint8))
    with pytest.raises(InputError, match=r"eight\.png: expected a 16-bit grayscale MOTS PNG"):
        read_mots_png(eight_bit)
    class_zero = tmp_path / "zero.png"
    write_png(class_zero, np.array([[0, 5]], dtype=np.uint16))
    with pytest.raises(InputError, match=r"zero\.png: value 5 encodes class 0"):
        read_mots_png(class_zero)
    truncated = tmp_path / "cut.png"
    write_png(truncated, np.full((30, 30), 2001, dtype=np.uint16))
    truncated.write_bytes(truncated.read_bytes()[:-13])
    with pytest.raises(InputError, match=r"cut\.png: truncated"):
        read_mots_png(truncated)


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_txt_ids_sharing_modulo_1000_become_separate_tracks(tmp_path: Path) -> None:
    """Issue 17: pedestrians 5 and 1005 (free numbering) must not merge into instance 6."""
    masks = _masks()
    path = tmp_path / "0002.txt"
    path.write_text(
        _line(0, 5, 2, masks[2005])
        + _line(0, 1000, 1, masks[1000])
        + _line(1, 1005, 2, masks[2005])
        + _line(1, 2, 2, masks[1000])
        + _line(1, 10000, 10, masks[10000])
    )
    objects = read_mots_txt(path)
    frames = [mots_objects_to_frame(objects[t], H, W, source=str(path)) for t in (0, 1)]
    first = np.unique(frames[0].instance[masks[2005]])
    second = np.unique(frames[1].instance[masks[2005]])
    assert first.size == second.size == 1 and first[0] != second[0]
    # Pedestrians are numbered 1, 2, 3 in obj_id order (2, 5, 1005); cars keep obj_id % 1000 + 1.
    assert (first[0], second[0]) == (2, 3)
    assert np.unique(frames[1].instance[masks[1000]]).tolist() == [1]
    assert np.unique(frames[0].instance[masks[1000]]).tolist() == [1]
    assert (frames[1].instance[masks[10000]] == 0).all()


def test_txt_following_the_convention_is_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "0002.txt"
    _sample_txt(path)
    objects = read_mots_txt(path)
    assert all(obj.track is None for frame in objects.values() for obj in frame)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_txt_fifo_is_refused_without_opening(tmp_path: Path) -> None:
    path = tmp_path / "0002.txt"
    os.mkfifo(path)
    with pytest.raises(InputError, match="not a regular file"):
        read_mots_txt(path)  # opening the FIFO would block this test for ever
