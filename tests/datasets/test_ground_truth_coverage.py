"""Issue 17: no silent wrong score from partial ground truth, MOTS id reuse or ``--matching none``.

A split that is not the official one (sequences missing, strangers, frames missing), a frame
deleted, a sequence emptied, a frame replaced by a FIFO or a folder, two MOTS tracks that share
``obj_id % 1000``, and a ground-truth class id beyond the label space under ``--matching none``
must each end in one clear line (or, for the MOTS ids, in tracks kept apart), never in a score of
whatever happened to be readable.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from tests import layouts
from tests.cli_runner import run_cli
from vpsbench.datasets import open_dataset
from vpsbench.datasets.kitti_step import KITTI_SEQUENCE_FRAMES
from vpsbench.datasets.waymo import VALIDATION_CONTEXTS
from vpsbench.errors import InputError
from vpsbench.evaluation import EvaluationJob, EvaluationSettings, check_official_split, evaluate
from vpsbench.formats.step import write_step_png
from vpsbench.matching import MatchingMode
from vpsbench.predictions import PredictionSource
from vpsbench.video import FrameRef, PanopticFrame, SequenceRef

needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")


def step_frames(count: int, seed: int = 0) -> list[PanopticFrame]:
    """``count`` small KITTI-STEP frames (trainIds with person/car tracks)."""
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(count):
        semantic = rng.choice([0, 2, 8, 11, 13], size=(6, 8))
        instance = np.where(np.isin(semantic, (11, 13)), rng.integers(1, 3, (6, 8)), 0)
        frames.append(PanopticFrame.from_arrays(semantic, instance))
    return frames


def write_ground_truth_predictions(root: Path, preds: Path, split: str = "val") -> None:
    """The ground truth of every listed frame of a KITTI-STEP copy, written as STEP predictions."""
    dataset = open_dataset("kitti-step", root)
    for sequence in dataset.sequences(split):
        for frame in sequence.frames:
            write_step_png(
                preds / frame.sequence / f"{frame.name}.png",
                dataset.load_ground_truth(split, frame),
            )


def cli_evaluate(root: Path, preds: Path, *extra: str) -> list[str]:
    return [
        "evaluate",
        "--pred",
        str(preds),
        "--dataset",
        "kitti-step",
        "--root",
        str(root),
        "--quiet",
        *extra,
    ]


def one_error_line(code: int, err: str) -> str:
    """The single error line of a failed command."""
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def finishes(action: Callable[[], object], seconds: float = 30.0) -> BaseException | None:
    """Run ``action`` in a thread; fail if it blocks (a FIFO opened for reading never returns)."""
    outcome: list[BaseException | None] = []

    def target() -> None:
        try:
            action()
            outcome.append(None)
        except BaseException as error:  # handed back to the test
            outcome.append(error)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, "blocked: a non-regular file was opened for reading"
    return outcome[0]


# -- the official split ----------------------------------------------------------------------------
def official_refs(table: dict[str, int]) -> list[SequenceRef]:
    """Sequence listings with exactly the official frame counts (no files needed)."""
    return [
        SequenceRef(name, tuple(FrameRef(name, f"{i:06d}", i) for i in range(count)))
        for name, count in table.items()
    ]


def test_official_split_check_uses_the_verify_table(tmp_path: Path) -> None:
    dataset = open_dataset("kitti-step", tmp_path)
    refs = official_refs(KITTI_SEQUENCE_FRAMES["val"])
    check_official_split(dataset, "val", refs)  # the whole official split passes

    short = [r if r.name != "0007" else SequenceRef("0007", r.frames[:-1]) for r in refs]
    with pytest.raises(InputError, match=r"0007 has 799 annotated frames, the official .* 800"):
        check_official_split(dataset, "val", short)
    with pytest.raises(InputError, match=r"lacks 1 of its 9 official sequences \(0014\)"):
        check_official_split(dataset, "val", [r for r in refs if r.name != "0014"])
    stranger = SequenceRef("0100", (FrameRef("0100", "000000", 0),))
    with pytest.raises(InputError, match=r"not official \(0100\)"):
        check_official_split(dataset, "val", [*refs, stranger])
    train = official_refs(KITTI_SEQUENCE_FRAMES["train"])
    with pytest.raises(InputError, match="lacks 9 of its 9"):
        check_official_split(dataset, "val", train)


def test_waymo_contexts_are_matched_by_context_name(tmp_path: Path) -> None:
    dataset = open_dataset("waymo", tmp_path)
    refs = [
        SequenceRef(f"segment-{name}_with_camera_labels", ref.frames)
        for name, ref in zip(VALIDATION_CONTEXTS, official_refs(VALIDATION_CONTEXTS), strict=True)
    ]
    check_official_split(dataset, "validation", refs)
    with pytest.raises(InputError, match="lacks 1 of its 20"):
        check_official_split(dataset, "validation", refs[1:])
    check_official_split(dataset, "training", refs[1:])  # no fixed list: not checked


def test_unofficial_sequences_are_not_scored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = layouts.write_kitti_step(
        tmp_path / "data", "val", {"0100": step_frames(2), "0101": step_frames(2, 1)}
    )
    write_ground_truth_predictions(root, tmp_path / "preds")
    line = one_error_line(*run_cli(cli_evaluate(root, tmp_path / "preds"), capsys)[::2])
    assert line.startswith(f"error: {root}:") and "lacks 9 of its 9 official sequences" in line
    assert "--sequences" in line
    code, _, err = run_cli(
        [
            "validate",
            "--pred",
            str(tmp_path / "preds"),
            "--dataset",
            "kitti-step",
            "--root",
            str(root),
        ],
        capsys,
    )
    assert "lacks 9 of its 9" in one_error_line(code, err)
    # Naming them on purpose scores them.
    output = tmp_path / "out.json"
    code, _, err = run_cli(
        cli_evaluate(root, tmp_path / "preds", "--sequences", "0100,0101", "--output", str(output)),
        capsys,
    )
    assert code == 0, err
    assert json.loads(output.read_text())["metrics"]["STQ"] == pytest.approx(1.0)


def test_partial_copy_needs_sequences(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = layouts.write_kitti_step(tmp_path / "data", "val", {"0002": step_frames(3)})
    write_ground_truth_predictions(root, tmp_path / "preds")
    line = one_error_line(*run_cli(cli_evaluate(root, tmp_path / "preds"), capsys)[::2])
    assert "lacks 8 of its 9 official sequences (0006, 0007" in line
    code, _, err = run_cli(cli_evaluate(root, tmp_path / "preds", "--sequences", "0002"), capsys)
    assert code == 0, err


# -- frames deleted, sequences emptied, non-regular files --------------------------------------
@pytest.fixture
def kitti_copy(tmp_path: Path) -> tuple[Path, Path]:
    root = layouts.write_kitti_step(
        tmp_path / "data", "val", {"0002": step_frames(4), "0006": step_frames(3, 1)}
    )
    write_ground_truth_predictions(root, tmp_path / "preds")
    return root, tmp_path / "preds"


def test_deleted_frame_is_an_error_even_with_sequences(
    kitti_copy: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root, preds = kitti_copy
    (root / "panoptic_maps" / "val" / "0002" / "000001.png").unlink()
    code, _, err = run_cli(cli_evaluate(root, preds, "--sequences", "0002,0006"), capsys)
    line = one_error_line(code, err)
    assert f"{root / 'panoptic_maps' / 'val' / '0002'}:" in line and "frame 1 is missing" in line


def test_emptied_sequence_is_an_error(
    kitti_copy: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root, preds = kitti_copy
    sequence_dir = root / "panoptic_maps" / "val" / "0006"
    for path in sequence_dir.iterdir():
        path.unlink()
    code, _, err = run_cli(cli_evaluate(root, preds, "--sequences", "0002,0006"), capsys)
    assert f"{sequence_dir}: sequence folder holds no frame files" in one_error_line(code, err)


@needs_fifo
def test_fifo_frame_is_refused_without_blocking(
    kitti_copy: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root, preds = kitti_copy
    frame = root / "panoptic_maps" / "val" / "0002" / "000003.png"  # the last frame: no gap
    frame.unlink()
    os.mkfifo(frame)
    results: list[tuple[int, str, str]] = []
    args = cli_evaluate(root, preds, "--sequences", "0002,0006")
    assert finishes(lambda: results.append(run_cli(args, capsys))) is None
    code, _, err = results[0]
    assert f"{frame}: is a FIFO, expected a regular file" in one_error_line(code, err)
    # Reading that frame directly is refused too, without opening it.
    dataset = open_dataset("kitti-step", root)
    error = finishes(lambda: dataset.load_ground_truth("val", FrameRef("0002", "000003", 3)))
    assert isinstance(error, InputError) and "FIFO" in str(error)


def test_directory_named_like_a_frame_is_refused(kitti_copy: tuple[Path, Path]) -> None:
    root, _ = kitti_copy
    frame = root / "panoptic_maps" / "val" / "0006" / "000002.png"
    frame.unlink()
    frame.mkdir()
    with pytest.raises(InputError, match=r"000002\.png: is a directory, expected a regular file"):
        open_dataset("kitti-step", root).sequences("val")


@needs_fifo
def test_mots_fifos_are_refused_without_blocking(tmp_path: Path) -> None:
    ids = [np.array([[0, 2001], [2001, 0]])] * 3
    png_root = layouts.write_kitti_mots(tmp_path / "png", "val", {"0002": ids})
    os.unlink(png_root / "instances" / "0002" / "000002.png")
    os.mkfifo(png_root / "instances" / "0002" / "000002.png")
    error = finishes(lambda: open_dataset("kitti-mots", png_root).sequences("val"))
    assert isinstance(error, InputError) and "is a FIFO" in str(error)

    txt_root = layouts.write_kitti_mots(tmp_path / "txt", "val", {"0002": ids}, as_txt=True)
    txt = txt_root / "instances_txt" / "0002.txt"
    txt.unlink()
    os.mkfifo(txt)
    dataset = open_dataset("kitti-mots", txt_root)
    error = finishes(lambda: dataset.load_ground_truth("val", FrameRef("0002", "000000", 0)))
    assert isinstance(error, InputError) and str(txt) in str(error)
    assert "not a regular file" in str(error)


@needs_fifo
def test_waymo_fifo_frame_is_refused(tmp_path: Path) -> None:
    context = next(iter(VALIDATION_CONTEXTS))
    root = layouts.write_waymo(tmp_path / "data", "validation", {context: step_frames(2)})
    semantic = root / "validation" / context / "1_semantic.png"
    semantic.unlink()
    os.mkfifo(semantic)
    error = finishes(lambda: open_dataset("waymo", root).sequences("validation"))
    assert isinstance(error, InputError) and f"{semantic}: is a FIFO" in str(error)


# -- --matching none ------------------------------------------------------------------------------
def test_matching_none_refuses_a_class_beyond_the_label_space(
    kitti_copy: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root, preds = kitti_copy
    args = cli_evaluate(root, preds, "--sequences", "0002,0006", "--matching", "none")
    code, _, err = run_cli(args, capsys)
    assert code == 0, err  # ground-truth ids as predictions are fine
    bad = preds / "0006" / "000001.png"
    frame = PanopticFrame.from_arrays(np.full((6, 8), 40), np.zeros((6, 8)))
    write_step_png(bad, frame)
    line = one_error_line(*run_cli(args, capsys)[::2])
    assert line.startswith(f"error: {bad}: frame 000001 has class id 40")
    assert "label space 0..18" in line
    # With matching, 40 is just another pseudo-class.
    code, _, err = run_cli(cli_evaluate(root, preds, "--sequences", "0002,0006"), capsys)
    assert code == 0, err


def test_matching_none_check_in_the_api(kitti_copy: tuple[Path, Path]) -> None:
    root, preds = kitti_copy
    job = EvaluationJob(open_dataset("kitti-step", root), "val", PredictionSource.open(preds))
    write_step_png(
        preds / "0002" / "000000.png",
        PanopticFrame.from_arrays(np.full((6, 8), 19), np.zeros((6, 8))),
    )
    settings = EvaluationSettings(matching=MatchingMode.NONE)
    with pytest.raises(InputError, match="class id 19, outside the kitti-step label space"):
        evaluate(job, settings, sequences=["0002"])


# -- MOTS ids that share obj_id % 1000 ------------------------------------------------------------
def _rle(mask: np.ndarray) -> str:
    encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return str(encoded["counts"].decode("ascii"))


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_mots_ids_sharing_modulo_1000_stay_apart_in_evaluate_and_validate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # One pedestrian track (2001) in both frames of KITTI-MOTS val 0002.
    person = np.array([[0, 0, 2001, 2001]] * 2)
    root = layouts.write_kitti_mots(tmp_path / "data", "val", {"0002": [person, person]})
    mask = person == 2001

    def predict(name: str, ids: tuple[int, int]) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        lines = [f"{t} {obj} 2 2 4 {_rle(mask)}\n" for t, obj in enumerate(ids)]
        (folder / "0002.txt").write_text("".join(lines))
        return folder

    def stq(folder: Path) -> dict[str, float]:
        output = folder.with_suffix(".json")
        code, _, err = run_cli(
            [
                *("evaluate", "--pred", str(folder), "--dataset", "kitti-mots"),
                *("--root", str(root), "--sequences", "0002", "--quiet", "--output", str(output)),
            ],
            capsys,
        )
        assert code == 0, err
        metrics = json.loads(output.read_text())["metrics"]
        return {key: metrics[key] for key in ("STQ", "AQ", "SQ")}

    two_tracks = stq(predict("renumbered", (5, 6)))
    one_track = stq(predict("same", (5, 5)))
    wrapped = stq(predict("wrapped", (5, 1005)))  # 5 and 1005: obj_id % 1000 + 1 would merge
    assert one_track["AQ"] > two_tracks["AQ"]
    assert wrapped == two_tracks
    code, out, err = run_cli(
        [
            *("validate", "--pred", str(tmp_path / "wrapped"), "--dataset", "kitti-mots"),
            *("--root", str(root), "--sequences", "0002"),
        ],
        capsys,
    )
    assert code == 0 and "2 frames" in out, err
