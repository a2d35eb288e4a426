"""KITTI-MOTS loader: cars and pedestrians, the ignore option, split lists, 0-based frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.layouts import write_image, write_kitti_mots
from vpsbench.datasets import DatasetNotFoundError, Problem, open_dataset
from vpsbench.datasets.kitti_mots import KittiMots
from vpsbench.errors import VpsbenchError
from vpsbench.formats.mots import write_mots_png
from vpsbench.video import FrameRef, PanopticFrame

# MOTS object ids, 8x12: background | car 1003, pedestrian 2000 | ignore 10000 | background.
VALUES = np.repeat(
    np.array(
        [
            [0] * 12,
            [1003] * 6 + [2000] * 6,
            [10000] * 12,
            [0] * 12,
        ]
    ),
    2,
    axis=0,
)
IGNORE = VALUES == 10000
# instance = id % 1000 + 1: car 1003 → 4, pedestrian 2000 → 1 (not crowd).
EXPECTED_SEMANTIC = np.where(VALUES == 1003, 1, np.where(VALUES == 2000, 2, 0))
EXPECTED_INSTANCE = np.where(VALUES == 1003, 4, np.where(VALUES == 2000, 1, 0))


def make_dataset(root: Path, as_txt: bool = False, **protocol: str) -> KittiMots:
    """Val sequences 0002 and 0006 plus train sequence 0000, three frames each."""
    write_kitti_mots(root, "val", {"0002": [VALUES] * 3, "0006": [VALUES] * 3}, as_txt=as_txt)
    write_kitti_mots(root, "train", {"0000": [VALUES] * 3}, as_txt=as_txt)
    return KittiMots(root, protocol)


def has_problem(problems: list[Problem], path: Path, text: str) -> bool:
    """Whether verify reported ``text`` for ``path``."""
    return any(p.path == str(path) and text in p.message for p in problems)


@pytest.mark.parametrize("as_txt", [False, True])
def test_ignore_region_is_void_by_default(tmp_path: Path, as_txt: bool) -> None:
    dataset = make_dataset(tmp_path, as_txt=as_txt)
    truth = dataset.load_ground_truth("val", FrameRef("0006", "000002", 2))
    np.testing.assert_array_equal(truth.semantic, np.where(IGNORE, 255, EXPECTED_SEMANTIC))
    np.testing.assert_array_equal(truth.instance, EXPECTED_INSTANCE)
    space = dataset.label_space()
    assert space.class_names == ("background", "car", "person")
    assert space.thing_classes == frozenset({1, 2})


def test_ignore_region_as_background(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path, ignore="background")
    truth = dataset.load_ground_truth("val", FrameRef("0002", "000000", 0))
    np.testing.assert_array_equal(truth.semantic, EXPECTED_SEMANTIC)
    with pytest.raises(VpsbenchError, match="ignore='crowd'"):
        KittiMots(tmp_path, {"ignore": "crowd"})


def test_splits_follow_the_kitti_step_lists(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path)
    val = dataset.sequences("val")
    assert [s.name for s in val] == ["0002", "0006"]
    assert [f.name for f in val[0].frames] == ["000000", "000001", "000002"]
    assert [s.name for s in dataset.sequences("train")] == ["0000"]
    image = dataset.image_path("val", val[1].frames[2])
    assert image == tmp_path / "image_02/0006/000002.png"


def test_split_without_sequences_is_not_found(tmp_path: Path) -> None:
    write_kitti_mots(tmp_path, "train", {"0000": [VALUES]})
    with pytest.raises(DatasetNotFoundError, match="no sequence of split 'val'"):
        KittiMots(tmp_path).sequences("val")
    with pytest.raises(DatasetNotFoundError, match="instances"):
        KittiMots(tmp_path / "absent").sequences("val")


def test_verify_reports_every_problem(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path)
    labels = tmp_path / "instances"
    (labels / "0002/000000.png").unlink()
    (labels / "0002/000001.png.bak").write_bytes(b"")
    (labels / "0006/000001.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 30)
    write_image(tmp_path / "image_02/0006/000000.png", (8, 10))
    write_mots_png(
        labels / "0006/000002.png", PanopticFrame.from_arrays(np.zeros((7, 12)), np.zeros((7, 12)))
    )
    write_kitti_mots(tmp_path, "val", {"0010": [VALUES]})
    (labels / "0099").mkdir()

    problems = dataset.verify("val")

    assert has_problem(problems, labels / "0002/000000.png", "missing frame")
    assert has_problem(problems, labels / "0002/000232.png", "missing frame")
    assert not has_problem(problems, labels / "0002/000233.png", "missing frame")
    assert has_problem(problems, labels / "0002/000001.png.bak", "unexpected file")
    assert has_problem(problems, labels / "0006/000001.png", "PNG")
    assert has_problem(problems, tmp_path / "image_02/0006/000000.png", "differs from its label")
    assert has_problem(problems, labels / "0006/000002.png", "size 12x7, expected 12x8")
    assert has_problem(problems, labels / "0007", "missing sequence (800 frames")
    assert has_problem(problems, labels / "0099", "not an official sequence")
    train_sequence = str(labels / "0000")
    assert not any(p.path.startswith(train_sequence) for p in problems)  # train data is fine


def test_root_from_vpsbench_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_dataset(tmp_path / "kitti-mots")
    monkeypatch.setenv("VPSBENCH_CONFIG", str(tmp_path / "no-config.toml"))
    monkeypatch.setenv("VPSBENCH_DATA", str(tmp_path))
    dataset = open_dataset("kitti-mots")
    assert dataset.root == tmp_path / "kitti-mots"
    assert [s.name for s in dataset.sequences("val")] == ["0002", "0006"]


def test_root_from_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_dataset(tmp_path / "KITTI-MOTS").root
    config = tmp_path / "config.toml"
    config.write_text(f'[datasets]\n"kitti-mots" = "{root.as_posix()}"\n')
    monkeypatch.setenv("VPSBENCH_CONFIG", str(config))
    monkeypatch.setenv("VPSBENCH_DATA", str(tmp_path / "elsewhere"))
    assert open_dataset("kitti-mots").root == root
