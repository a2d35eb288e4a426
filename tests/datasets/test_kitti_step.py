"""KITTI-STEP loader: STEP RGB decoding, the two thing protocols, cs27, verify, root lookup."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from tests.layouts import write_image, write_kitti_step
from vpsbench.datasets import DatasetNotFoundError, Problem, open_dataset
from vpsbench.datasets.kitti_step import KittiStep
from vpsbench.errors import InputError, VpsbenchError
from vpsbench.formats.step import write_step_png
from vpsbench.video import FrameRef, PanopticFrame

# Native frame, 8x12: road | car 3 + person 1 | rider (no instance) + sky | void.
ROAD, SKY, PERSON, RIDER, CAR, VOID = 0, 10, 11, 12, 13, 255
NATIVE_SEMANTIC = np.repeat(
    np.array(
        [
            [ROAD] * 12,
            [CAR] * 6 + [PERSON] * 6,
            [RIDER] * 6 + [SKY] * 6,
            [VOID] * 12,
        ]
    ),
    2,
    axis=0,
)
NATIVE_INSTANCE = np.repeat(
    np.array([[0] * 12, [3] * 6 + [1] * 6, [0] * 12, [0] * 12]),
    2,
    axis=0,
)


def native_frame() -> PanopticFrame:
    """The native STEP frame every test sequence repeats."""
    return PanopticFrame.from_arrays(NATIVE_SEMANTIC, NATIVE_INSTANCE)


def make_dataset(root: Path, **protocol: str) -> KittiStep:
    """Two val sequences of three frames each under ``root``."""
    write_kitti_step(root, "val", {"0002": [native_frame()] * 3, "0006": [native_frame()] * 3})
    return KittiStep(root, protocol)


def has_problem(problems: list[Problem], path: Path, text: str) -> bool:
    """Whether verify reported ``text`` for ``path``."""
    return any(p.path == str(path) and text in p.message for p in problems)


def test_sequences_list_frames_in_order(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path)
    sequences = dataset.sequences("val")
    assert [s.name for s in sequences] == ["0002", "0006"]
    assert [f.name for f in sequences[0].frames] == ["000000", "000001", "000002"]
    assert [f.index for f in sequences[1].frames] == [0, 1, 2]
    frame = sequences[0].frames[1]
    assert dataset.image_path("val", frame) == tmp_path / "images/val/0002/000001.png"


def test_step_things_keep_person_and_car_tracks(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path)
    truth = dataset.load_ground_truth("val", FrameRef("0002", "000001", 1))
    np.testing.assert_array_equal(truth.semantic, NATIVE_SEMANTIC)
    np.testing.assert_array_equal(truth.instance, NATIVE_INSTANCE)
    assert dataset.label_space().thing_classes == frozenset({PERSON, CAR})
    assert dataset.label_space().evaluated_classes == tuple(range(19))


def test_cityscapes_things_make_untracked_rider_crowd(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path, things="cityscapes")
    truth = dataset.load_ground_truth("val", FrameRef("0006", "000000", 0))
    rider = NATIVE_SEMANTIC == RIDER
    assert RIDER in dataset.label_space().thing_classes
    assert (truth.semantic[rider] == RIDER).all()
    assert (truth.instance[rider] == 0).all()  # a thing pixel with instance 0 is crowd
    rows = {row.native_id: row for row in dataset.class_mapping()}
    assert "crowd" in rows[RIDER].note


def test_cs27_maps_train_ids(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path, label_space="cs27")
    truth = dataset.load_ground_truth("val", FrameRef("0002", "000000", 0))
    expected = np.repeat(
        np.array([[0] * 12, [19] * 6 + [17] * 6, [18] * 6 + [16] * 6, [255] * 12]), 2, axis=0
    )
    np.testing.assert_array_equal(truth.semantic, expected)
    np.testing.assert_array_equal(truth.instance, NATIVE_INSTANCE)
    space = dataset.label_space()
    assert space.num_classes == 27
    assert space.thing_classes == frozenset({17, 19})
    assert 2 not in space.evaluated_classes  # parking has no trainId
    assert len(space.evaluated_classes) == 19


def test_protocol_is_validated() -> None:
    with pytest.raises(VpsbenchError, match="things='all'"):
        KittiStep("/nowhere", {"things": "all"})
    with pytest.raises(VpsbenchError, match="no protocol option 'mode'"):
        KittiStep("/nowhere", {"mode": "cups"})
    with pytest.raises(VpsbenchError, match="no split 'test'"):
        KittiStep("/nowhere").sequences("test")


def test_missing_root_and_split(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="panoptic_maps"):
        KittiStep(tmp_path / "absent").sequences("val")
    write_kitti_step(tmp_path, "val", {"0002": [native_frame()]})
    expected = re.escape(str(tmp_path / "panoptic_maps" / "train"))
    with pytest.raises(DatasetNotFoundError, match=expected):
        KittiStep(tmp_path).sequences("train")


def test_class_outside_train_ids_is_an_input_error(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path)
    path = tmp_path / "panoptic_maps/val/0002/000000.png"
    write_step_png(path, PanopticFrame.from_arrays(np.full((8, 12), 40), np.zeros((8, 12))))
    with pytest.raises(InputError, match="class ids 40") as error:
        dataset.load_ground_truth("val", FrameRef("0002", "000000", 0))
    assert error.value.path == str(path)


def test_verify_reports_every_problem(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path)
    labels = tmp_path / "panoptic_maps/val"
    (labels / "0002/000001.png").unlink()
    (labels / "0002/notes.txt").write_text("stray")
    (labels / "0006/000002.png").write_bytes(b"not a png")
    write_image(tmp_path / "images/val/0006/000000.png", (8, 13))
    write_step_png(
        labels / "0002/000002.png", PanopticFrame.from_arrays(np.zeros((9, 12)), np.zeros((9, 12)))
    )
    write_kitti_step(tmp_path, "val", {"0003": [native_frame()]})

    problems = dataset.verify("val")

    assert has_problem(problems, labels / "0002/000001.png", "missing frame")
    assert has_problem(problems, labels / "0002/000232.png", "missing frame")
    assert not has_problem(problems, labels / "0002/000233.png", "missing frame")
    assert has_problem(problems, labels / "0002/notes.txt", "unexpected file")
    assert has_problem(problems, labels / "0006/000002.png", "not a PNG")
    assert has_problem(problems, tmp_path / "images/val/0006/000000.png", "differs from its label")
    assert has_problem(problems, labels / "0002/000002.png", "differs from the sequence's")
    assert has_problem(problems, labels / "0007", "missing sequence (800 frames)")
    assert has_problem(problems, labels / "0003", "not an official val sequence")


def test_verify_reports_bad_ids(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path)
    bad = PanopticFrame.from_arrays(np.full((8, 12), 40), np.full((8, 12), 2))
    write_step_png(tmp_path / "panoptic_maps/val/0002/000000.png", bad)
    messages = [p.message for p in dataset.verify("val") if p.path.endswith("0002/000000.png")]
    assert any("class ids 40" in m for m in messages)
    assert any("instance ids on classes 40" in m for m in messages)


def test_root_from_vpsbench_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_dataset(tmp_path / "kitti-step")
    monkeypatch.setenv("VPSBENCH_CONFIG", str(tmp_path / "no-config.toml"))
    monkeypatch.setenv("VPSBENCH_DATA", str(tmp_path))
    dataset = open_dataset("kitti-step", protocol={"things": "cityscapes"})
    assert isinstance(dataset, KittiStep)
    assert dataset.root == tmp_path / "kitti-step"
    assert [s.name for s in dataset.sequences("val")] == ["0002", "0006"]


def test_root_from_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_dataset(tmp_path / "somewhere").root
    config = tmp_path / "config.toml"
    config.write_text(f'[datasets]\n"kitti-step" = "{root.as_posix()}"\n')
    monkeypatch.setenv("VPSBENCH_CONFIG", str(config))
    monkeypatch.setenv("VPSBENCH_DATA", str(tmp_path / "elsewhere"))
    dataset = open_dataset("kitti-step")
    assert dataset.root == root
    assert len(dataset.sequences("val")) == 2
