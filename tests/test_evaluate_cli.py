"""`vpsbench evaluate` end to end on each of the five dataset layouts, and its errors.

Every dataset gets the same tiny video, written in its native on-disk format, so that one
hand-computed set of numbers checks them all. In the evaluation label space, with S a stuff class
and T a thing class (track a), the two 2×4 frames and the predictions (pseudo-class/instance) are:

    ground truth, both frames   prediction, frame 0     prediction, frame 1
    S S T T                     5 5 9/1 9/1             5 5 9/1 9/2
    S S T T                     5 9/1 9/1 9/1           5 5 9/1 9/2

Matching: pseudo 9 carries instances → thing → T; pseudo 5 → S.
AQ: GT tube (8 px) vs predicted tube 1 (7 px, TPA 6) and tube 2 (2 px, TPA 2):
    AQ = 1/8 · (6 · 6/(7+8−6) + 2 · 2/(2+8−2)) = 1/8 · (4 + 0.5) = 0.5625.
SQ: IoU_S = 7/(8+7−7) = 7/8, IoU_T = 8/(8+9−8) = 8/9 → SQ = (7/8 + 8/9)/2.
PQ (= VPQ k=1): frame 0: S IoU 3/4, T IoU 4/5 (both TP); frame 1: S IoU 1 (TP), T: two
predictions of IoU 1/2 (not > 1/2) → 1 FN, 2 FP. PQ_S = 1.75/2, PQ_T = 0.8/(1 + 1 + 0.5) = 0.32.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests import layouts
from tests.cli_runner import run_cli
from vpsbench.datasets import open_dataset
from vpsbench.formats.npz import write_npz
from vpsbench.formats.png import write_png
from vpsbench.formats.step import write_step_png
from vpsbench.video import PanopticFrame

EXPECTED_AQ = 0.5625
EXPECTED_SQ = (7 / 8 + 8 / 9) / 2
EXPECTED_PQ = (1.75 / 2 + 0.32) / 2

STUFF_PSEUDO, THING_PSEUDO = 5, 9
PREDICTIONS = [
    PanopticFrame.from_arrays([[5, 5, 9, 9], [5, 9, 9, 9]], [[0, 0, 1, 1], [0, 1, 1, 1]]),
    PanopticFrame.from_arrays([[5, 5, 9, 9], [5, 5, 9, 9]], [[0, 0, 1, 2], [0, 0, 1, 2]]),
]


def native_frames(stuff: int, thing: int, track: int) -> list[PanopticFrame]:
    """The ground truth of the module docstring in a dataset's native ids."""
    semantic = [[stuff, stuff, thing, thing]] * 2
    instance = [[0, 0, track, track]] * 2
    return [PanopticFrame.from_arrays(semantic, instance)] * 2


def mots_ids(thing_object: int) -> list[np.ndarray]:
    return [np.array([[0, 0, thing_object, thing_object]] * 2)] * 2


# name → (writer of the dataset under `root`, split, protocol options)
LAYOUTS: dict[str, tuple[Callable[[Path], Path], str, list[str]]] = {
    "kitti-step": (
        lambda root: layouts.write_kitti_step(root, "val", {"0002": native_frames(0, 13, 1)}),
        "val",
        [],
    ),
    "cityscapes-vps": (
        lambda root: layouts.write_cityscapes_vps(root, "val", {"0001": native_frames(0, 13, 7)}),
        "val",
        [],
    ),
    "waymo": (
        lambda root: layouts.write_waymo(
            root, "validation", {"1024360143612057520_3580_000_3600_000": native_frames(20, 2, 90)}
        ),
        "validation",
        [],
    ),
    "mots": (lambda root: layouts.write_mots(root, {"0002": mots_ids(2001)}), "train", []),
    "kitti-mots": (
        lambda root: layouts.write_kitti_mots(root, "val", {"0002": mots_ids(1005)}),
        "val",
        [],
    ),
}


def write_predictions(
    dataset_name: str, root: Path, split: str, out: Path, as_npz: bool = False
) -> list[Path]:
    """Write PREDICTIONS for every frame the loader lists, mirroring its names."""
    dataset = open_dataset(dataset_name, root)
    written = []
    for sequence in dataset.sequences(split):
        assert len(sequence.frames) == len(PREDICTIONS)
        for frame, prediction in zip(sequence.frames, PREDICTIONS, strict=True):
            path = out / frame.sequence / f"{frame.name}.{'npz' if as_npz else 'png'}"
            (write_npz if as_npz else write_step_png)(path, prediction)
            written.append(path)
    return written


@pytest.mark.parametrize("dataset_name", sorted(LAYOUTS))
def test_hand_checked_numbers_on_every_layout(
    dataset_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    writer, split, protocol = LAYOUTS[dataset_name]
    root = writer(tmp_path / "data")
    write_predictions(dataset_name, root, split, tmp_path / "preds")
    output = tmp_path / "results.json"
    code, out, err = run_cli(
        [
            "evaluate",
            "--pred",
            str(tmp_path / "preds"),
            "--dataset",
            dataset_name,
            "--root",
            str(root),
            "--split",
            split,
            "--output",
            str(output),
            "--quiet",
            "--sequences",  # a one-video copy of the split: a deliberate subset
            ",".join(s.name for s in open_dataset(dataset_name, root).sequences(split)),
        ]
        + [arg for option in protocol for arg in ("--protocol", option)],
        capsys,
    )
    assert code == 0, err
    results = json.loads(output.read_text())
    metrics = results["metrics"]
    assert metrics["AQ"] == pytest.approx(EXPECTED_AQ, abs=1e-12)
    assert metrics["SQ"] == pytest.approx(EXPECTED_SQ, abs=1e-12)
    assert metrics["STQ"] == pytest.approx(math.sqrt(EXPECTED_AQ * EXPECTED_SQ), abs=1e-12)
    assert metrics["PQ"]["PQ"] == pytest.approx(EXPECTED_PQ, abs=1e-12)
    assert metrics["VPQ_per_window"]["1"]["PQ"] == pytest.approx(EXPECTED_PQ, abs=1e-12)
    space = open_dataset(dataset_name, root).label_space()
    mapping = results["mapping"]
    assert space.class_names.index(mapping[str(THING_PSEUDO)]) in space.thing_classes
    assert space.class_names.index(mapping[str(STUFF_PSEUDO)]) not in space.thing_classes
    assert results["protocol"]["pseudo_things"] == [THING_PSEUDO]
    assert len(results["predictions"]["sha256"]) == 64
    assert "STQ" in out and "56.2" in out  # the table shows AQ = 56.2 %


def test_workers_give_identical_numbers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    sequences = {}
    for name in ("0002", "0006", "0007"):
        frames = []
        for _ in range(3):
            semantic = rng.choice([0, 1, 2, 11, 13, 255], size=(12, 16))
            instance = np.where(np.isin(semantic, (11, 13)), rng.integers(0, 4, (12, 16)), 0)
            frames.append(PanopticFrame.from_arrays(semantic, instance))
        sequences[name] = frames
    root = layouts.write_kitti_step(tmp_path / "data", "val", sequences)
    for name, frames in sequences.items():
        for t, frame in enumerate(frames):
            noisy = np.where(rng.random(frame.shape) < 0.2, 3, frame.semantic)
            write_step_png(
                tmp_path / "preds" / name / f"{t:06d}.png",
                PanopticFrame.from_arrays((noisy * 7) % 23, frame.instance),
            )
    numbers = []
    for workers in ("1", "2"):
        output = tmp_path / f"w{workers}.json"
        code, _, err = run_cli(
            [
                "evaluate",
                "--pred",
                str(tmp_path / "preds"),
                "--dataset",
                "kitti-step",
                "--root",
                str(root),
                "--workers",
                workers,
                "--sequences",
                "0002,0006,0007",
                "--output",
                str(output),
                "--quiet",
            ],
            capsys,
        )
        assert code == 0, err
        document = json.loads(output.read_text())
        numbers.append((document["metrics"], document["per_sequence"], document["mapping"]))
    assert numbers[0] == numbers[1]


@pytest.fixture
def kitti_submission(tmp_path: Path) -> tuple[Path, Path, list[Path]]:
    writer, split, _ = LAYOUTS["kitti-step"]
    root = writer(tmp_path / "data")
    files = write_predictions("kitti-step", root, split, tmp_path / "preds")
    return root, tmp_path / "preds", files


def evaluate_args(root: Path, preds: Path, *extra: str) -> list[str]:
    return [
        "evaluate",
        "--pred",
        str(preds),
        "--dataset",
        "kitti-step",
        "--root",
        str(root),
        "--quiet",
        "--sequences",
        "0002",
        *extra,
    ]


def test_missing_prediction_frame_is_one_clear_line(
    kitti_submission: tuple[Path, Path, list[Path]], capsys: pytest.CaptureFixture[str]
) -> None:
    root, preds, files = kitti_submission
    files[1].unlink()
    code, _, err = run_cli(evaluate_args(root, preds), capsys)
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert str(files[1]) in lines[0] and "missing prediction" in lines[0]


def test_shape_mismatch_names_the_file(
    kitti_submission: tuple[Path, Path, list[Path]], capsys: pytest.CaptureFixture[str]
) -> None:
    root, preds, files = kitti_submission
    write_step_png(files[0], PanopticFrame.from_arrays(np.zeros((2, 5)), np.zeros((2, 5))))
    code, _, err = run_cli(evaluate_args(root, preds), capsys)
    assert code != 0
    assert str(files[0]) in err and "(2, 5)" in err and "(2, 4)" in err


def test_corrupt_png_names_the_file(
    kitti_submission: tuple[Path, Path, list[Path]], capsys: pytest.CaptureFixture[str]
) -> None:
    root, preds, files = kitti_submission
    files[0].write_bytes(files[0].read_bytes()[:40])
    code, _, err = run_cli(evaluate_args(root, preds), capsys)
    assert code != 0
    assert len(err.strip().splitlines()) == 1 and str(files[0]) in err


def test_class_beyond_declared_range(
    kitti_submission: tuple[Path, Path, list[Path]], capsys: pytest.CaptureFixture[str]
) -> None:
    root, preds, files = kitti_submission
    code, _, err = run_cli(evaluate_args(root, preds, "--num-classes", "8"), capsys)
    assert code != 0
    assert "class id 9 is beyond the declared range 0..7" in err and str(files[0]) in err


def test_instance_overflowing_npz_encoding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    writer, split, _ = LAYOUTS["kitti-step"]
    root = writer(tmp_path / "data")
    files = write_predictions("kitti-step", root, split, tmp_path / "preds", as_npz=True)
    np.savez(
        files[0],
        semantic=np.full((2, 4), 9, dtype=np.int64),
        instance=np.full((2, 4), 2**40, dtype=np.int64),
    )
    code, _, err = run_cli(evaluate_args(root, tmp_path / "preds"), capsys)
    assert code != 0
    assert str(files[0]) in err and "int32" in err


def test_validate_reports_every_problem(
    kitti_submission: tuple[Path, Path, list[Path]], capsys: pytest.CaptureFixture[str]
) -> None:
    root, preds, files = kitti_submission
    code, out, _ = run_cli(
        [
            *("validate", "--pred", str(preds), "--dataset", "kitti-step", "--root", str(root)),
            *("--sequences", "0002"),
        ],
        capsys,
    )
    assert code == 0 and "2 frames" in out
    files[0].unlink()
    write_png(files[1], np.zeros((2, 4), dtype=np.uint8))  # gray, not a STEP RGB png
    code, _, err = run_cli(
        [
            "validate",
            "--pred",
            str(preds),
            "--dataset",
            "kitti-step",
            "--root",
            str(root),
            "--pred-format",
            "step",
            "--sequences",
            "0002",
        ],
        capsys,
    )
    assert code == 1
    assert str(files[0]) in err and str(files[1]) in err and "2 problem(s)" in err


def test_datasets_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["datasets", "list"], capsys)
    assert code == 0
    for name in LAYOUTS:
        assert name in out
    code, out, _ = run_cli(["datasets", "info", "waymo"], capsys)
    assert code == 0 and "lane marker" in out.lower() and "min_instance_area" in out
    root = LAYOUTS["kitti-step"][0](tmp_path / "data")
    code, _, err = run_cli(["datasets", "verify", "kitti-step", "--root", str(root)], capsys)
    assert code == 1 and "0006" in err  # official val sequences are missing from the copy
    code, _, err = run_cli(["datasets", "info", "nope"], capsys)
    assert code == 2 and "unknown dataset 'nope'" in err


def test_unknown_protocol_option_is_rejected(
    kitti_submission: tuple[Path, Path, list[Path]], capsys: pytest.CaptureFixture[str]
) -> None:
    root, preds, _ = kitti_submission
    code, _, err = run_cli(evaluate_args(root, preds, "--protocol", "things=everything"), capsys)
    assert code == 2 and "things" in err and "step" in err
