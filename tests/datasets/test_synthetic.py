"""The synthetic dataset through the real loader: round trip, verify, prepare, evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.cli_runner import run_cli
from vpsbench.datasets import open_dataset
from vpsbench.datasets.synthetic import prepare_synthetic
from vpsbench.errors import VpsbenchError
from vpsbench.evaluation import EvaluationJob, EvaluationSettings, evaluate
from vpsbench.formats.step import write_step_png
from vpsbench.matching import MatchingMode
from vpsbench.predictions import PredictionSource
from vpsbench.synthetic import SyntheticConfig, render_video

SMALL = {"videos": 2, "frames": 3, "height": 48, "width": 96, "seed": 3}


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    return prepare_synthetic(root, splits=["val"], workers=1, **SMALL)


def test_step_files_round_trip_through_the_loader(synthetic_root: Path) -> None:
    dataset = open_dataset("synthetic", synthetic_root)
    sequences = dataset.sequences("val")
    assert [s.name for s in sequences] == ["0000", "0001"]
    config = SyntheticConfig(**SMALL)
    for video, sequence in enumerate(sequences):
        rendered = list(render_video(config, "val", video))
        assert len(sequence.frames) == len(rendered) == SMALL["frames"]
        for ref, frame in zip(sequence.frames, rendered, strict=True):
            truth = dataset.load_ground_truth("val", ref)
            np.testing.assert_array_equal(truth.semantic, frame.semantic)
            np.testing.assert_array_equal(truth.instance, frame.instance)


def test_all_thing_classes_are_tracked(synthetic_root: Path) -> None:
    space = open_dataset("synthetic", synthetic_root).label_space()
    assert space.thing_classes == frozenset(range(11, 19))


def test_ground_truth_as_prediction_scores_perfectly(synthetic_root: Path, tmp_path: Path) -> None:
    dataset = open_dataset("synthetic", synthetic_root)
    for sequence in dataset.sequences("val"):
        for ref in sequence.frames:
            write_step_png(
                tmp_path / ref.sequence / f"{ref.name}.png", dataset.load_ground_truth("val", ref)
            )
    job = EvaluationJob(dataset, "val", PredictionSource.open(tmp_path, "step"))
    result = evaluate(job, EvaluationSettings(matching=MatchingMode.NONE))
    assert result.stq.stq == pytest.approx(1.0)
    assert result.stq.aq == pytest.approx(1.0)
    assert result.stq.sq == pytest.approx(1.0)


def test_verify_is_clean_then_reports_each_damage(synthetic_root: Path, tmp_path: Path) -> None:
    dataset = open_dataset("synthetic", synthetic_root)
    assert dataset.verify("val") == []
    copy = tmp_path / "copy"
    import shutil

    shutil.copytree(synthetic_root, copy)
    (copy / "panoptic_maps" / "val" / "0001" / "000002.png").unlink()
    (copy / "cues" / "val" / "0000" / "000001.npz").write_bytes(b"not a zip")
    problems = [str(p) for p in open_dataset("synthetic", copy).verify("val")]
    assert any("0001/000002.png: missing frame" in p for p in problems)
    assert any("0000/000001.npz: unreadable cue archive" in p for p in problems)
    assert len(problems) == 2


def test_prepare_refuses_other_settings_in_the_same_root(synthetic_root: Path) -> None:
    with pytest.raises(VpsbenchError, match="other settings"):
        prepare_synthetic(synthetic_root, splits=["val"], workers=1, **{**SMALL, "seed": 4})


def test_prepare_and_verify_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "generated"
    code, out, err = run_cli(
        [
            "datasets",
            "prepare",
            "synthetic",
            "--root",
            str(root),
            "--videos",
            "1",
            "--frames",
            "2",
            "--size",
            "32x64",
            "--workers",
            "1",
        ],
        capsys,
    )
    assert code == 0, err
    assert json.loads((root / "synthetic.json").read_text())["frames"] == 2
    code, out, _ = run_cli(["datasets", "verify", "synthetic", "--root", str(root)], capsys)
    assert code == 0 and "looks complete" in out
    code, _, err = run_cli(["datasets", "prepare", "kitti-step"], capsys)
    assert code == 2 and "cannot be downloaded" in err
