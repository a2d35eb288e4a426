"""cityscapes-sequence loader (unlabelled 30-frame snippets) and videocups' use of it for training.

The fixture is a tiny ``leftImg8bit_sequence/train`` in the real file naming: aachen with two
sequence ids (gtFine frame 19 each, so frames 0..29) and bochum with two snippets of one sequence
id (gtFine frames 313 and 600: frames 294..323 and 581..610), all 8x16 images.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from vpsbench_methods.videocups.plugin import VideoCups, VideoCupsConfig

from tests.cli_runner import run_cli
from tests.layouts import write_cityscapes_vps, write_image
from vpsbench.datasets import DatasetNotFoundError, Problem, open_dataset
from vpsbench.datasets.cityscapes_sequence import (
    SNIPPETS_PER_SPLIT,
    TRAIN_SNIPPETS_PER_CITY,
    CityscapesSequence,
    cut_snippets,
)
from vpsbench.datasets.cityscapes_vps import CityscapesVps
from vpsbench.errors import VpsbenchError
from vpsbench.methods import RunContext
from vpsbench.methods.base import build_config
from vpsbench.video import PanopticFrame

SIZE = (8, 16)
#: gtFine frame of each fixture snippet: (city, sequence id, frame number).
GT_FRAMES = (("aachen", 0, 19), ("aachen", 1, 19), ("bochum", 0, 313), ("bochum", 0, 600))
SNIPPET_NAMES = [f"{city}_{seq:06d}_{frame:06d}" for city, seq, frame in GT_FRAMES]


class TinyCityscapesSequence(CityscapesSequence):
    """The loader with the fixture's size and counts in place of the official ones."""

    resolution: ClassVar[tuple[int, int]] = SIZE
    snippets_per_split: ClassVar[Mapping[str, int]] = {"train": 4}
    snippets_per_city: ClassVar[Mapping[str, Mapping[str, int]]] = {
        "train": {"aachen": 2, "bochum": 2}
    }


def frame_path(root: Path, city: str, seq: int, frame: int) -> Path:
    """Where Cityscapes keeps a train sequence frame."""
    name = f"{city}_{seq:06d}_{frame:06d}_leftImg8bit.png"
    return root / "leftImg8bit_sequence" / "train" / city / name


@pytest.fixture(scope="module")
def fixture_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The four snippets, written in reverse frame order (the loader must sort them)."""
    root = tmp_path_factory.mktemp("cityscapes")
    for city, seq, gt_frame in GT_FRAMES:
        for frame in reversed(range(gt_frame - 19, gt_frame + 11)):
            write_image(frame_path(root, city, seq, frame), SIZE)
    return root


@pytest.fixture
def root(fixture_root: Path, tmp_path: Path) -> Path:
    """A copy of the fixture that a test may damage."""
    copy = tmp_path / "cityscapes"
    for path in fixture_root.rglob("*.png"):
        target = copy / path.relative_to(fixture_root)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    return copy


def messages(problems: list[Problem], path: Path) -> list[str]:
    """What verify said about ``path``."""
    return [p.message for p in problems if p.path == str(path)]


def test_snippets_are_sequences_of_30_frames_in_frame_order(fixture_root: Path) -> None:
    dataset = open_dataset("cityscapes-sequence", fixture_root)
    assert isinstance(dataset, CityscapesSequence)
    sequences = dataset.sequences("train")
    assert [s.name for s in sequences] == SNIPPET_NAMES
    assert all(len(s.frames) == 30 for s in sequences)
    bochum = sequences[2].frames
    assert [f.name for f in bochum] == [f"bochum_000000_{n:06d}" for n in range(294, 324)]
    assert [f.index for f in bochum] == list(range(30))
    assert {f.sequence for f in bochum} == {"bochum_000000_000313"}
    assert bochum[19].name == "bochum_000000_000313"  # the 20th frame is the gtFine frame
    assert sequences[3].frames[0].name == "bochum_000000_000581"
    assert dataset.image_path("train", bochum[0]) == frame_path(fixture_root, "bochum", 0, 294)
    # The leftImg8bit_sequence folder itself is accepted as the root too.
    inner = CityscapesSequence(fixture_root / "leftImg8bit_sequence")
    assert inner.sequences("train") == sequences
    assert inner.image_path("train", bochum[0]) == frame_path(fixture_root, "bochum", 0, 294)


def test_unlabelled_video_has_no_ground_truth(fixture_root: Path) -> None:
    dataset = CityscapesSequence(fixture_root)
    frame = dataset.sequences("train")[0].frames[0]
    with pytest.raises(VpsbenchError, match="unlabelled"):
        dataset.load_ground_truth("train", frame)
    assert dataset.label_space().evaluated_classes == ()
    assert dataset.default_split() == "train"
    with pytest.raises(DatasetNotFoundError, match="val"):
        dataset.sequences("val")
    with pytest.raises(VpsbenchError, match="no split 'training'"):
        dataset.sequences("training")


def test_cut_snippets_windows_start_at_the_next_frame_on_disk() -> None:
    numbers = [*range(0, 30), *range(31, 61), 100]
    snippets = cut_snippets("ulm", 3, numbers)
    assert [(s.start, len(s.frames)) for s in snippets] == [(0, 30), (31, 30), (100, 1)]
    assert [s.name for s in snippets] == [
        "ulm_000003_000019",
        "ulm_000003_000050",
        "ulm_000003_000119",
    ]
    assert snippets[2].missing == list(range(101, 130))
    gap = cut_snippets("ulm", 3, [n for n in range(30) if n != 7])
    assert len(gap) == 1 and gap[0].missing == [7]


def test_complete_copy_verifies_clean(fixture_root: Path) -> None:
    assert TinyCityscapesSequence(fixture_root).verify("train") == []


def test_verify_reports_a_missing_frame(root: Path) -> None:
    lost = frame_path(root, "aachen", 1, 7)
    lost.unlink()
    dataset = TinyCityscapesSequence(root)
    problems = dataset.verify("train")
    assert messages(problems, lost) == [
        "snippet aachen_000001_000019 lacks 1 of its 30 frames: 000007"
    ]
    assert len(problems) == 1  # the snippet still counts: no count problem
    frames = dataset.sequences("train")[1].frames
    assert len(frames) == 29 and [f.index for f in frames[6:8]] == [6, 8]


def test_verify_reports_a_short_snippet(root: Path) -> None:
    for frame in range(601, 611):
        frame_path(root, "bochum", 0, frame).unlink()
    problems = TinyCityscapesSequence(root).verify("train")
    assert messages(problems, frame_path(root, "bochum", 0, 601)) == [
        "snippet bochum_000000_000600 lacks 10 of its 30 frames: 000601–000610"
    ]
    assert len(problems) == 1


def test_verify_reports_unreadable_stray_and_misplaced_files(root: Path) -> None:
    broken = frame_path(root, "aachen", 0, 3)
    broken.write_bytes(b"not a png")
    city = root / "leftImg8bit_sequence" / "train" / "bochum"
    (city / "notes.txt").write_text("x")
    misplaced = city / "aachen_000005_000000_leftImg8bit.png"
    write_image(misplaced, SIZE)
    big = frame_path(root, "aachen", 1, 0)
    write_image(big, (SIZE[0], SIZE[1] + 1))
    problems = TinyCityscapesSequence(root).verify("train")
    assert len(messages(problems, broken)) == 1
    assert "cannot read the image" in messages(problems, broken)[0]
    assert messages(problems, city / "notes.txt") == [
        "not a frame (bochum_<seq:06d>_<frame:06d>_leftImg8bit.png)"
    ]
    assert len(messages(problems, misplaced)) == 1
    assert messages(problems, big) == ["size 17x8, expected 16x8"]
    assert len(problems) == 4


def test_verify_reports_counts_against_the_official_splits(root: Path) -> None:
    stray = frame_path(root, "aachen", 1, 40)  # one frame outside every snippet
    write_image(stray, SIZE)
    (root / "leftImg8bit_sequence" / "train" / "paris").mkdir()
    problems = CityscapesSequence(root).verify("train")
    split_dir = root / "leftImg8bit_sequence" / "train"
    assert messages(problems, split_dir) == ["5 snippets in 3 cities, expected 2975"]
    assert messages(problems, split_dir / "aachen") == ["3 snippets, expected 174"]
    assert messages(problems, split_dir / "bochum") == ["2 snippets, expected 96"]
    assert messages(problems, split_dir / "bremen") == ["missing city (316 snippets expected)"]
    assert messages(problems, split_dir / "paris") == ["not a Cityscapes train city"]
    assert "lacks 29 of its 30 frames" in messages(problems, frame_path(root, "aachen", 1, 41))[0]
    # The official sizes: every 8x16 fixture frame is reported.
    sizes = [p for p in problems if p.message == "size 16x8, expected 2048x1024"]
    assert len(sizes) == 4 * 30 + 1
    missing_cities = [p for p in problems if p.message.startswith("missing city")]
    assert len(missing_cities) == 16


def test_official_counts() -> None:
    assert SNIPPETS_PER_SPLIT == {"train": 2975, "val": 500, "test": 1525}
    assert sum(TRAIN_SNIPPETS_PER_CITY.values()) == 2975 and len(TRAIN_SNIPPETS_PER_CITY) == 18


def test_registry_and_cli(fixture_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["datasets", "list"], capsys)
    assert code == 0 and "cityscapes-sequence" in out
    code, out, _ = run_cli(["datasets", "info", "cityscapes-sequence"], capsys)
    assert code == 0 and "2975" in out and "leftImg8bit_sequence" in out
    code, _, err = run_cli(
        ["datasets", "verify", "cityscapes-sequence", "--root", str(fixture_root)], capsys
    )
    assert code == 1 and "4 snippets in 2 cities, expected 2975" in err


def videocups(*overrides: str) -> VideoCups:
    return VideoCups(build_config(VideoCupsConfig, {}, overrides))


def test_videocups_trains_on_cityscapes_sequence_for_cityscapes_vps(
    fixture_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VPSBENCH_CONFIG", str(tmp_path / "no-config.toml"))
    monkeypatch.setenv("VPSBENCH_DATA", str(tmp_path / "data"))
    evaluated = RunContext(CityscapesVps(tmp_path / "vps"), "val", tmp_path / "run")
    # --set train_root=DIR
    training = videocups(f"train_root={fixture_root}").training_context(evaluated)
    assert training.dataset.name == "cityscapes-sequence" and training.split == "train"
    assert training.dataset.root == fixture_root
    assert [s.name for s in training.sequences] == SNIPPET_NAMES
    assert training.run_dir == evaluated.run_dir
    # Without train_root: $VPSBENCH_DATA/cityscapes-sequence, like every dataset root.
    with pytest.raises(VpsbenchError, match=r"cityscapes-sequence.*train_root"):
        videocups().training_context(evaluated)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "cityscapes-sequence").symlink_to(fixture_root)
    training = videocups().training_context(evaluated)
    assert training.dataset.name == "cityscapes-sequence"
    assert len(training.sequences) == 4


def test_cross_domain_datasets_train_on_the_cityscapes_sequences(
    fixture_root: Path, tmp_path: Path
) -> None:
    # The paper trains once on Cityscapes and evaluates KITTI-STEP, Waymo and MOTS cross-domain.
    kitti = open_dataset("kitti-step", tmp_path / "kitti")
    method = videocups(f"train_root={fixture_root}")
    assert method.training_dataset(kitti).name == "cityscapes-sequence"
    # Training on the evaluated dataset's own split stays possible on request.
    own = videocups("train_dataset=kitti-step")
    assert own.training_dataset(kitti) is kitti
    evaluated = RunContext(kitti, "train", tmp_path / "run")
    assert own.training_context(evaluated) is evaluated


def test_run_method_on_cityscapes_vps_looks_for_the_sequence_video(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VPSBENCH_CONFIG", str(tmp_path / "no-config.toml"))
    frame = PanopticFrame.from_arrays(np.zeros(SIZE), np.zeros(SIZE))
    vps = write_cityscapes_vps(tmp_path / "vps", "val", {"0001": [frame] * 2})
    missing = tmp_path / "nowhere"
    args = ["run-method", "videocups", "--dataset", "cityscapes-vps", "--root", str(vps)]
    args += ["--run-dir", str(tmp_path / "run"), "--stage", "pseudo-label"]
    code, _, err = run_cli([*args, "--set", f"train_root={missing}"], capsys)
    assert code == 2
    assert "cityscapes-sequence has no readable 'train' split" in err and str(missing) in err
