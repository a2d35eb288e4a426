"""Cityscapes-VPS loader: VPSNet's RGB pngs + json, video/frame order, cs27, verify."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.layouts import cityscapes_vps_image_id, write_cityscapes_vps, write_image
from vpsbench.datasets import DatasetNotFoundError, Problem, open_dataset
from vpsbench.datasets.cityscapes_labels import CS19_THINGS
from vpsbench.datasets.cityscapes_vps import CityscapesVps
from vpsbench.errors import InputError, VpsbenchError
from vpsbench.formats.coco_panoptic import (
    read_panoptic_json,
    write_coco_panoptic_png,
    write_panoptic_json,
)
from vpsbench.video import FrameRef, PanopticFrame

# Native frame in trainIds, 8x12: road | car #7, person #8 | building, rider crowd | void.
ROAD, BUILDING, PERSON, RIDER, CAR, VOID = 0, 2, 11, 12, 13, 255
NATIVE_SEMANTIC = np.repeat(
    np.array(
        [
            [ROAD] * 12,
            [CAR] * 6 + [PERSON] * 6,
            [BUILDING] * 6 + [RIDER] * 6,
            [VOID] * 12,
        ]
    ),
    2,
    axis=0,
)
NATIVE_INSTANCE = np.repeat(np.array([[0] * 12, [7] * 6 + [8] * 6, [0] * 12, [0] * 12]), 2, axis=0)


def native_frame() -> PanopticFrame:
    """The native frame every test video repeats."""
    return PanopticFrame.from_arrays(NATIVE_SEMANTIC, NATIVE_INSTANCE)


def make_dataset(root: Path, **protocol: str) -> CityscapesVps:
    """Videos 0001 and 0003 with their first three annotated frames, json order shuffled."""
    write_cityscapes_vps(root, "val", {"0003": [native_frame()] * 3, "0001": [native_frame()] * 3})
    json_path = root / "panoptic_gt_val_city_vps.json"
    panoptic_json = read_panoptic_json(json_path)
    panoptic_json.annotations = panoptic_json.annotations[::-1]
    write_panoptic_json(json_path, panoptic_json)
    return CityscapesVps(root, protocol)


def has_problem(problems: list[Problem], path: Path, text: str) -> bool:
    """Whether verify reported ``text`` for ``path``."""
    return any(p.path == str(path) and text in p.message for p in problems)


def test_videos_and_frames_are_ordered(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path)
    sequences = dataset.sequences("val")
    assert [s.name for s in sequences] == ["0001", "0003"]
    names = [f.name for f in sequences[1].frames]
    assert names == [cityscapes_vps_image_id("0003", k) for k in range(3)]
    assert names[0] == "0003_0013_frankfurt_000000_001736"
    image = dataset.image_path("val", sequences[0].frames[0])
    assert image == tmp_path / "val/img/0001_0001_frankfurt_000000_001736_newImg8bit.png"


def test_cs19_ground_truth_keeps_segment_ids_as_tracks(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path)
    frames = dataset.sequences("val")[0].frames
    first = dataset.load_ground_truth("val", frames[0])
    last = dataset.load_ground_truth("val", frames[2])
    np.testing.assert_array_equal(first.semantic, NATIVE_SEMANTIC)
    np.testing.assert_array_equal(first.instance, NATIVE_INSTANCE)  # rider: crowd, instance 0
    np.testing.assert_array_equal(last.instance, first.instance)
    space = dataset.label_space()
    assert space.thing_classes == CS19_THINGS
    assert space.evaluated_classes == tuple(range(19))


def test_cs27(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path, label_space="cs27")
    truth = dataset.load_ground_truth("val", dataset.sequences("val")[0].frames[1])
    expected = np.repeat(
        np.array([[0] * 12, [19] * 6 + [17] * 6, [4] * 6 + [18] * 6, [255] * 12]), 2, axis=0
    )
    np.testing.assert_array_equal(truth.semantic, expected)
    np.testing.assert_array_equal(truth.instance, NATIVE_INSTANCE)
    space = dataset.label_space()
    assert space.thing_classes == frozenset(range(17, 27))
    assert set(space.evaluated_classes).isdisjoint({2, 3, 7, 8, 9, 11, 22, 23})


def test_protocol_and_unknown_frame(tmp_path: Path) -> None:
    with pytest.raises(VpsbenchError, match="label_space='cs7'"):
        CityscapesVps(tmp_path, {"label_space": "cs7"})
    dataset = make_dataset(tmp_path)
    with pytest.raises(InputError, match="no annotation for image_id 'nope'"):
        dataset.load_ground_truth("val", FrameRef("0001", "nope", 0))


def test_missing_root_and_json(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="absent"):
        CityscapesVps(tmp_path / "absent").sequences("val")
    tmp_path.joinpath("val/panoptic_video").mkdir(parents=True)
    with pytest.raises(DatasetNotFoundError, match=r"panoptic_gt_val_city_vps\.json"):
        CityscapesVps(tmp_path).sequences("val")


def test_verify_reports_every_problem(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path)
    labels, images = tmp_path / "val/panoptic_video", tmp_path / "val/img"
    first_id = cityscapes_vps_image_id("0001", 0)
    second_id = cityscapes_vps_image_id("0001", 1)
    third_id = cityscapes_vps_image_id("0003", 2)
    (labels / "stray.png").write_bytes(b"")
    (labels / f"{second_id}_final_mask.png").write_bytes(b"corrupt")
    write_image(images / f"{first_id}_newImg8bit.png", (8, 13))
    (images / f"{third_id}_newImg8bit.png").unlink()
    other_track = PanopticFrame.from_arrays(NATIVE_SEMANTIC, np.where(NATIVE_INSTANCE == 7, 9, 0))
    write_coco_panoptic_png(labels / f"{third_id}_final_mask.png", other_track, CS19_THINGS)

    problems = dataset.verify("val")

    json_path = tmp_path / "panoptic_gt_val_city_vps.json"
    assert has_problem(problems, json_path, "video 0001 lacks annotated frame 0004")
    assert has_problem(problems, json_path, "video 0003 lacks annotated frame 0018")
    assert has_problem(problems, json_path, "2 videos, expected 50 (300 annotated frames)")
    assert has_problem(problems, labels / "stray.png", "not referenced by the json")
    assert has_problem(problems, labels / f"{second_id}_final_mask.png", "not a PNG")
    assert has_problem(problems, images / f"{first_id}_newImg8bit.png", "differs from its label")
    assert has_problem(problems, images / f"{third_id}_newImg8bit.png", "file not found")
    assert has_problem(problems, labels / f"{third_id}_final_mask.png", "not in segments_info")
    assert has_problem(problems, labels / f"{first_id}_final_mask.png", "expected 2048x1024")


def test_root_from_vpsbench_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_dataset(tmp_path / "cityscapes-vps")
    monkeypatch.setenv("VPSBENCH_CONFIG", str(tmp_path / "no-config.toml"))
    monkeypatch.setenv("VPSBENCH_DATA", str(tmp_path))
    dataset = open_dataset("cityscapes-vps")
    assert dataset.root == tmp_path / "cityscapes-vps"
    assert len(dataset.sequences("val")) == 2


def test_root_from_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_dataset(tmp_path / "city_vps").root
    config = tmp_path / "config.toml"
    config.write_text(f'[datasets]\n"cityscapes-vps" = "{root.as_posix()}"\n')
    monkeypatch.setenv("VPSBENCH_CONFIG", str(config))
    monkeypatch.delenv("VPSBENCH_DATA", raising=False)
    assert open_dataset("cityscapes-vps").root == root
