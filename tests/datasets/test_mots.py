"""MOTSChallenge loader: png and txt ground truth, CUPS and official modes, 1-based frames."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.layouts import write_image, write_mots
from vpsbench.datasets import DatasetNotFoundError, Problem, open_dataset
from vpsbench.datasets.mots import MotsChallenge
from vpsbench.errors import InputError, VpsbenchError
from vpsbench.formats.png import write_png
from vpsbench.video import FrameRef

# MOTS object ids, 8x12: background | pedestrians 2005, 2001 | car 1003, ignore 10000 | background.
VALUES = np.repeat(
    np.array(
        [
            [0] * 12,
            [2005] * 6 + [2001] * 6,
            [1003] * 6 + [10000] * 6,
            [0] * 12,
        ]
    ),
    2,
    axis=0,
)
PERSON = (VALUES // 1000) == 2
IGNORE = VALUES == 10000
# The MOTS codecs store instance = id % 1000 + 1, so pedestrian 2005 → 6 and 2001 → 2.
EXPECTED_INSTANCE = np.where(VALUES == 2005, 6, np.where(VALUES == 2001, 2, 0))


def make_dataset(root: Path, as_txt: bool = False, **protocol: str) -> MotsChallenge:
    """Sequences 0002 and 0005 with three frames each."""
    write_mots(root, {"0002": [VALUES] * 3, "0005": [VALUES] * 3}, as_txt=as_txt)
    return MotsChallenge(root, protocol)


def has_problem(problems: list[Problem], path: Path, text: str) -> bool:
    """Whether verify reported ``text`` for ``path``."""
    return any(p.path == str(path) and text in p.message for p in problems)


@pytest.mark.parametrize("as_txt", [False, True])
def test_cups_mode_folds_everything_but_pedestrians_into_background(
    tmp_path: Path, as_txt: bool
) -> None:
    dataset = make_dataset(tmp_path, as_txt=as_txt)
    truth = dataset.load_ground_truth("train", FrameRef("0002", "000002", 1))
    np.testing.assert_array_equal(truth.semantic, PERSON.astype(np.int32))
    np.testing.assert_array_equal(truth.instance, EXPECTED_INSTANCE)
    space = dataset.label_space()
    assert space.class_names == ("background", "person")
    assert space.thing_classes == frozenset({1})


@pytest.mark.parametrize("as_txt", [False, True])
def test_official_mode_makes_the_ignore_region_void(tmp_path: Path, as_txt: bool) -> None:
    dataset = make_dataset(tmp_path, as_txt=as_txt, mode="official")
    truth = dataset.load_ground_truth("train", FrameRef("0005", "000003", 2))
    np.testing.assert_array_equal(truth.semantic, np.where(IGNORE, 255, PERSON.astype(np.int32)))
    np.testing.assert_array_equal(truth.instance, EXPECTED_INSTANCE)
    rows = {row.native_id: row.target_id for row in dataset.class_mapping()}
    assert rows == {0: 0, 1: 0, 2: 1, 10: 255}


def test_frames_are_one_based(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path)
    sequences = dataset.sequences("train")
    assert [s.name for s in sequences] == ["0002", "0005"]
    assert [f.name for f in sequences[0].frames] == ["000001", "000002", "000003"]
    image = dataset.image_path("train", sequences[1].frames[0])
    assert image == tmp_path / "train/images/0005/000001.jpg"


def test_txt_without_images_lists_every_official_frame(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path, as_txt=True)
    shutil.rmtree(tmp_path / "train/images/0002")
    frames = dataset.sequences("train")[0].frames
    assert len(frames) == 600
    assert frames[-1].name == "000600"
    empty = dataset.load_ground_truth("train", frames[-1])
    assert empty.shape == (8, 12)
    assert (empty.semantic == 0).all()


def test_protocol_and_split_are_validated() -> None:
    with pytest.raises(VpsbenchError, match="mode='strict'"):
        MotsChallenge("/nowhere", {"mode": "strict"})
    with pytest.raises(VpsbenchError, match="no split 'val'"):
        MotsChallenge("/nowhere").sequences("val")


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="instances"):
        MotsChallenge(tmp_path / "absent").sequences("train")
    (tmp_path / "train").mkdir()
    with pytest.raises(DatasetNotFoundError, match="instances_txt"):
        MotsChallenge(tmp_path).sequences("train")


def test_bad_class_is_an_input_error(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path)
    path = tmp_path / "train/instances/0002/000001.png"
    write_png(path, np.full((8, 12), 5001, dtype=np.uint16))
    with pytest.raises(InputError, match="class ids 5") as error:
        dataset.load_ground_truth("train", FrameRef("0002", "000001", 0))
    assert error.value.path == str(path)


def test_verify_reports_every_problem(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path)
    labels = tmp_path / "train/instances"
    (labels / "0002/000002.png").unlink()
    (labels / "0002/Thumbs.db").write_bytes(b"")
    (labels / "0005/000003.png").write_bytes(b"garbage")
    write_image(tmp_path / "train/images/0005/000001.jpg", (9, 12))
    write_mots(tmp_path, {"0007": [VALUES]})

    problems = dataset.verify("train")

    assert has_problem(problems, labels / "0002/000002.png", "missing frame")
    assert has_problem(problems, labels / "0002/000600.png", "missing frame")
    assert has_problem(problems, labels / "0002/Thumbs.db", "unexpected file")
    assert has_problem(problems, labels / "0005/000003.png", "not a PNG")
    assert has_problem(
        problems, tmp_path / "train/images/0005/000001.jpg", "differs from its label"
    )
    assert has_problem(problems, labels / "0005/000001.png", "expected 640x480")
    assert has_problem(problems, labels / "0009", "missing sequence (525 frames")
    assert has_problem(problems, labels / "0007", "not an official sequence")


def test_verify_txt_sequence(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path, as_txt=True)
    txt = tmp_path / "train/instances_txt/0002.txt"
    first_line = txt.read_text().splitlines()[0]
    with txt.open("a") as handle:
        handle.write("700" + first_line[first_line.index(" ") :] + "\n")
    problems = dataset.verify("train")
    assert has_problem(problems, txt, "frame 700 outside frames 1..600")
    assert has_problem(problems, txt, "frame 1: size 12x8, expected 1920x1080")
    assert has_problem(problems, tmp_path / "train/images/0002/000004.jpg", "file not found")


def test_root_from_vpsbench_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_dataset(tmp_path / "mots")
    monkeypatch.setenv("VPSBENCH_CONFIG", str(tmp_path / "no-config.toml"))
    monkeypatch.setenv("VPSBENCH_DATA", str(tmp_path))
    dataset = open_dataset("mots", protocol={"mode": "official"})
    assert dataset.root == tmp_path / "mots"
    assert len(dataset.sequences("train")) == 2


def test_root_from_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_dataset(tmp_path / "MOTSChallenge").root
    config = tmp_path / "config.toml"
    config.write_text(f'[datasets]\nmots = "{root.as_posix()}"\n')
    monkeypatch.setenv("VPSBENCH_CONFIG", str(config))
    monkeypatch.delenv("VPSBENCH_DATA", raising=False)
    assert open_dataset("mots").root == root
