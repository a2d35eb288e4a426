"""Tests of the COCO / VPSNet panoptic PNG + JSON codec."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vpsbench.errors import InputError
from vpsbench.formats.coco_panoptic import (
    PanopticAnnotation,
    PanopticJson,
    SegmentInfo,
    decode_coco_panoptic,
    encode_coco_panoptic,
    id_to_rgb,
    read_coco_panoptic_png,
    read_panoptic_json,
    rgb_to_id,
    write_coco_panoptic_png,
    write_panoptic_json,
)
from vpsbench.formats.png import write_png
from vpsbench.video import PanopticFrame

THINGS = frozenset(range(11, 19))
ROAD_ID = 8405120  # rgb2id of the Cityscapes road colour (128, 64, 128)


def test_rgb_to_id_known_values() -> None:
    rgb = np.array([[[1, 2, 3], [128, 64, 128]], [[0, 0, 0], [255, 255, 255]]], dtype=np.uint8)
    np.testing.assert_array_equal(
        rgb_to_id(rgb), [[1 + 2 * 256 + 3 * 65536, ROAD_ID], [0, 2**24 - 1]]
    )
    np.testing.assert_array_equal(id_to_rgb(rgb_to_id(rgb)), rgb)


def test_id_to_rgb_rejects_out_of_range() -> None:
    with pytest.raises(ValueError, match=r"must lie in \[0, 16777216\)"):
        id_to_rgb(np.array([[2**24]], dtype=np.int64))
    with pytest.raises(ValueError):
        id_to_rgb(np.array([[-1]], dtype=np.int64))


def _vps_like_ids() -> tuple[np.ndarray, list[SegmentInfo]]:
    """A 2x3 id map with VOID, road (stuff), one car track and a person crowd segment."""
    ids = np.array([[0, ROAD_ID, ROAD_ID], [4_000_123, 4_000_123, 77]], dtype=np.int32)
    segments = [
        SegmentInfo(id=ROAD_ID, category_id=0, iscrowd=0, area=2),
        SegmentInfo(id=4_000_123, category_id=13, iscrowd=0, area=2),
        SegmentInfo(id=77, category_id=11, iscrowd=1, area=1),
    ]
    return ids, segments


def test_decode_hand_built_ids() -> None:
    ids, segments = _vps_like_ids()
    frame = decode_coco_panoptic(ids, segments, THINGS)
    np.testing.assert_array_equal(frame.semantic, [[255, 0, 0], [13, 13, 11]])
    np.testing.assert_array_equal(frame.instance, [[0, 0, 0], [4_000_123, 4_000_123, 0]])


def test_decode_custom_void_label() -> None:
    ids, segments = _vps_like_ids()
    frame = decode_coco_panoptic(ids, segments, THINGS, void_label=-1)
    assert frame.semantic[0, 0] == -1


def test_decode_unlisted_segment_names_source() -> None:
    ids, segments = _vps_like_ids()
    with pytest.raises(InputError, match=r"^f\.png: segment id\(s\) 77 in the PNG are not in"):
        decode_coco_panoptic(ids, segments[:2], THINGS, source="f.png")


def test_decode_absent_segment_names_source() -> None:
    ids, segments = _vps_like_ids()
    extra = [*segments, SegmentInfo(id=5, category_id=13)]
    with pytest.raises(InputError, match=r"^f\.png: segment id\(s\) 5 in segments_info do not"):
        decode_coco_panoptic(ids, extra, THINGS, source="f.png")


def test_decode_rejects_duplicate_and_void_segments() -> None:
    ids, segments = _vps_like_ids()
    with pytest.raises(InputError, match="twice"):
        decode_coco_panoptic(ids, [*segments, segments[0]], THINGS)
    with pytest.raises(InputError, match="reserved for VOID"):
        decode_coco_panoptic(ids, [*segments, SegmentInfo(id=0, category_id=1)], THINGS)


def _random_frame(rng: np.random.Generator, shape: tuple[int, int]) -> PanopticFrame:
    """A frame mixing void, stuff, tracked things and crowd."""
    semantic = rng.integers(0, 19, shape)
    semantic[rng.random(shape) < 0.1] = 255
    instance = np.where(np.isin(semantic, list(THINGS)), rng.integers(0, 6, shape) * 1000, 0)
    instance[np.isin(semantic, [13])] += 3  # cars: ids 3, 1003, ...; never crowd
    instance[semantic == 255] = 0
    # make instance ids class-unique, as the id scheme requires
    instance = np.where(instance > 0, instance + semantic * 10, 0)
    return PanopticFrame.from_arrays(semantic, instance)


def test_encode_decode_round_trip_and_segments() -> None:
    rng = np.random.default_rng(11)
    frame = _random_frame(rng, (31, 37))
    rgb, segments = encode_coco_panoptic(frame, THINGS)
    assert rgb.dtype == np.uint8 and rgb.shape == (31, 37, 3)
    ids = rgb_to_id(rgb)
    assert [s.id for s in segments] == sorted(s.id for s in segments)
    for segment in segments:
        assert segment.area == int((ids == segment.id).sum())
        if segment.category_id in THINGS and not segment.iscrowd:
            assert 1 <= segment.id < 2**24 - 1025
        elif segment.iscrowd:
            assert segment.id == 2**24 - 513 - segment.category_id
        else:
            assert segment.id == 2**24 - 1 - segment.category_id
    assert int((ids == 0).sum()) == int((frame.semantic == 255).sum())
    back = decode_coco_panoptic(ids, segments, THINGS)
    np.testing.assert_array_equal(back.semantic, frame.semantic)
    np.testing.assert_array_equal(back.instance, frame.instance)


def test_encode_known_ids() -> None:
    frame = PanopticFrame.from_arrays([[0, 11, 11, 255]], [[0, 0, 42, 9]])
    rgb, segments = encode_coco_panoptic(frame, THINGS)
    np.testing.assert_array_equal(rgb_to_id(rgb), [[2**24 - 1, 2**24 - 524, 42, 0]])
    assert segments == [
        SegmentInfo(id=42, category_id=11, iscrowd=0, area=1),
        SegmentInfo(id=2**24 - 524, category_id=11, iscrowd=1, area=1),
        SegmentInfo(id=2**24 - 1, category_id=0, iscrowd=0, area=1),
    ]


@pytest.mark.parametrize(
    ("semantic", "instance", "message"),
    [
        ([[0]], [[5]], "stuff class 0 carries instance ids"),
        ([[13]], [[2**24 - 1025]], "does not fit a segment id"),
        ([[512]], [[0]], "class 512"),
        ([[-3]], [[0]], "class -3"),
        ([[11, 13]], [[7, 7]], "instance id 7 is used by several classes"),
        ([[13]], [[-2]], "negative instance"),
    ],
)
def test_encode_rejects_unencodable_frames(
    semantic: list[list[int]], instance: list[list[int]], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        encode_coco_panoptic(PanopticFrame.from_arrays(semantic, instance), THINGS)


def test_png_round_trip_and_stable_bytes(tmp_path: Path) -> None:
    rng = np.random.default_rng(12)
    frame = _random_frame(rng, (16, 20))
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    segments = write_coco_panoptic_png(first, frame, THINGS)
    back = read_coco_panoptic_png(first, segments, THINGS)
    np.testing.assert_array_equal(back.semantic, frame.semantic)
    np.testing.assert_array_equal(back.instance, frame.instance)
    assert write_coco_panoptic_png(second, back, THINGS) == segments
    assert first.read_bytes() == second.read_bytes()


def test_png_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "0005_0025_frankfurt_000000_001736.png"
    ids, segments = _vps_like_ids()
    write_png(path, id_to_rgb(ids))
    with pytest.raises(InputError, match=r"001736\.png: segment id\(s\) 77"):
        read_coco_panoptic_png(path, segments[:2], THINGS)
    gray = tmp_path / "gray.png"
    write_png(gray, np.zeros((2, 2), dtype=np.uint8))
    with pytest.raises(InputError, match=r"gray\.png: expected an 8-bit RGB panoptic PNG"):
        read_coco_panoptic_png(gray, [], THINGS)
    bad = tmp_path / "bad.png"
    with pytest.raises(InputError, match=r"bad\.png: stuff class 0"):
        write_coco_panoptic_png(bad, PanopticFrame.from_arrays([[0]], [[1]]), THINGS)
    assert not bad.exists()


def _sample_json() -> PanopticJson:
    return PanopticJson(
        images=[
            {
                "id": "0005_0025_frankfurt_000000_001736",
                "width": 2048,
                "height": 1024,
                "file_name": "0005_0025_frankfurt_000000_001736_newImg8bit.png",
            },
        ],
        annotations=[
            PanopticAnnotation(
                file_name="0005_0025_frankfurt_000000_001736_final_mask.png",
                image_id="0005_0025_frankfurt_000000_001736",
                segments=[SegmentInfo(ROAD_ID, 0, 0, 1234), SegmentInfo(4_000_123, 13, 0, 99)],
            )
        ],
        categories=[
            {"id": 0, "name": "road", "isthing": 0, "color": [128, 64, 128]},
            {"id": 13, "name": "car", "isthing": 1, "color": [0, 0, 142]},
        ],
    )


def test_json_round_trip_and_stable_bytes(tmp_path: Path) -> None:
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    original = _sample_json()
    write_panoptic_json(first, original)
    back = read_panoptic_json(first)
    assert back == original
    write_panoptic_json(second, back)
    assert first.read_bytes() == second.read_bytes()
    raw = json.loads(first.read_text())
    assert raw["annotations"][0]["segments_info"][1] == {
        "id": 4_000_123,
        "category_id": 13,
        "iscrowd": 0,
        "area": 99,
    }


def test_json_reads_vpsnet_prediction_file(tmp_path: Path) -> None:
    path = tmp_path / "pred.json"
    segment = {"id": 3, "category_id": 13, "iscrowd": 0, "bbox": [0, 0, 1, 1], "area": 4}
    path.write_text(json.dumps({"annotations": [{"segments_info": [segment]}]}))
    parsed = read_panoptic_json(path)
    assert parsed.images == [] and parsed.categories == []
    assert parsed.annotations == [
        PanopticAnnotation(file_name="", image_id="", segments=[SegmentInfo(3, 13, 0, 4)])
    ]


def test_json_integer_image_id_becomes_string(tmp_path: Path) -> None:
    path = tmp_path / "coco.json"
    path.write_text(
        json.dumps({"annotations": [{"image_id": 139, "file_name": "x.png", "segments_info": []}]})
    )
    assert read_panoptic_json(path).annotations[0].image_id == "139"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("{not json", "invalid JSON"),
        ("[]", "top level: expected an object"),
        ('{"images": []}', "missing key 'annotations'"),
        ('{"annotations": [{"image_id": "a"}]}', "annotations\\[0\\]: missing key 'segments_info'"),
        (
            '{"annotations": [{"segments_info": [{"id": 1}]}]}',
            "annotations\\[0\\].segments_info\\[0\\]: missing key 'category_id'",
        ),
        (
            '{"annotations": [{"segments_info": [{"id": "1", "category_id": 2}]}]}',
            "segments_info\\[0\\].id: expected an integer",
        ),
        (
            '{"annotations": [{"segments_info": [{"id": 1, "category_id": 2},'
            ' {"id": 1, "category_id": 3}]}]}',
            "duplicate segment id 1",
        ),
        ('{"annotations": [], "categories": [{"id": 1, "name": "x"}]}', "missing key 'isthing'"),
        ('{"annotations": [], "categories": [{"id": 1, "isthing": 0}]}', "missing key 'name'"),
    ],
)
def test_json_errors_name_file_and_key(tmp_path: Path, document: str, message: str) -> None:
    path = tmp_path / "panoptic_gt_val_city_vps.json"
    path.write_text(document)
    with pytest.raises(InputError, match=rf"panoptic_gt_val_city_vps\.json: .*{message}"):
        read_panoptic_json(path)


def test_json_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"absent\.json: file not found"):
        read_panoptic_json(tmp_path / "absent.json")
