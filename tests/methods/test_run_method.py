"""`vpsbench run-method` end to end on a tiny synthetic split: every baseline, resume, records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli_runner import run_cli
from vpsbench.datasets.synthetic import prepare_synthetic
from vpsbench.records import read_record

BASELINES = ("cups-sort", "cups-mono-sort", "u2seg-sort", "depthg-videocutler")
FAST = ["--set", "num_pseudo_classes=8"]


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    return prepare_synthetic(
        root, videos=2, frames=6, height=48, width=96, seed=1, splits=["val"], workers=1
    )


def run_args(name: str, root: Path, run_dir: Path, *extra: str) -> list[str]:
    return [
        "run-method",
        name,
        "--dataset",
        "synthetic",
        "--root",
        str(root),
        "--run-dir",
        str(run_dir),
        *FAST,
        *extra,
    ]


@pytest.mark.parametrize("name", BASELINES)
def test_each_baseline_runs_end_to_end_and_is_scored(
    name: str, synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    code, out, err = run_cli(run_args(name, synthetic_root, run_dir), capsys)
    assert code == 0, err
    assert "STQ" in out and "weight-free" in err
    results = json.loads((run_dir / "results.json").read_text())
    assert 0.0 < results["metrics"]["SQ"] <= 1.0
    assert results["counts"] == {"sequences": 2, "frames": 12}
    record = read_record(run_dir / "record.json")
    assert record.method == name and record.provenance == "reproduced"
    manifest = json.loads((run_dir / "run.json").read_text())
    assert manifest["method"] == name and manifest["config"]["num_pseudo_classes"] == 8
    assert set(manifest["stages"]) >= {"cluster", "predict"}
    assert all(stage["seconds"] >= 0 for stage in manifest["stages"].values())
    assert len(list((run_dir / "predictions").rglob("*.png"))) == 12


def test_an_interrupted_run_resumes_without_redoing_finished_sequences(
    synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    assert run_cli(run_args("cups-sort", synthetic_root, run_dir), capsys)[0] == 0
    finished = sorted((run_dir / "predictions" / "0000").glob("*.png"))
    stamps = [path.stat().st_mtime_ns for path in finished]
    # Simulate a crash during sequence 0001 of the predict stage.
    for path in (run_dir / "predictions" / "0001").glob("*.png"):
        path.unlink()
    (run_dir / "done" / "predict" / "0001.done").unlink()
    (run_dir / "done" / "predict" / "_all.done").unlink()
    code, _, err = run_cli(run_args("cups-sort", synthetic_root, run_dir), capsys)
    assert code == 0, err
    assert "cluster: already done" in err and "0000 already done" in err
    assert [path.stat().st_mtime_ns for path in finished] == stamps
    assert len(list((run_dir / "predictions" / "0001").glob("*.png"))) == 6


def test_other_settings_in_the_same_run_dir_are_refused(
    synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    assert (
        run_cli(run_args("cups-sort", synthetic_root, run_dir, "--stage", "cluster"), capsys)[0]
        == 0
    )
    code, _, err = run_cli(
        run_args("cups-sort", synthetic_root, run_dir, "--set", "seed=2"), capsys
    )
    assert code == 2 and "other settings" in err


def test_per_frame_predictions_made_elsewhere_are_tracked(
    synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = tmp_path / "first"
    assert run_cli(run_args("u2seg-sort", synthetic_root, first), capsys)[0] == 0
    second = tmp_path / "second"
    code, _, err = run_cli(
        run_args(
            "cups-sort", synthetic_root, second, "--set", f"per_frame={first / 'predictions'}"
        ),
        capsys,
    )
    assert code == 0, err
    assert "per-frame predictions" in err
    assert json.loads((second / "run.json").read_text())["config"]["per_frame"].endswith(
        "predictions"
    )


def test_missing_weights_name_the_file(
    synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("torch")
    code, _, err = run_cli(
        run_args(
            "cups-sort", synthetic_root, tmp_path / "run", "--set", "weights=/nowhere/cups.pth"
        ),
        capsys,
    )
    assert code == 2 and "/nowhere/cups.pth" in err


def test_methods_list_and_info(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["methods", "list"], capsys)
    assert code == 0 and all(name in out for name in BASELINES)
    code, out, _ = run_cli(["methods", "info", "depthg-videocutler"], capsys)
    assert code == 0 and "cluster → segment → predict" in out and "clip_overlap" in out
    code, _, err = run_cli(["methods", "info", "nope"], capsys)
    assert code == 2 and "unknown method 'nope'" in err


def test_videocups_pseudo_labels_are_written_resumed_and_scored(
    synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "vc"
    args = [
        "run-method",
        "videocups",
        "--dataset",
        "synthetic",
        "--root",
        str(synthetic_root),
        "--run-dir",
        str(run_dir),
        "--set",
        "num_pseudo_classes=8",
        "--set",
        "workers=1",
        "--set",
        "train_split=val",
        "--stage",
        "pseudo-label",
    ]
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    labels = run_dir / "pseudo-label" / "labels"
    assert len(list(labels.rglob("*.png"))) == 12
    summary = json.loads((run_dir / "pseudo-label" / "summary.json").read_text())
    assert summary["tracks"] >= 0 and summary["settings"]["alpha"] == 0.15
    (run_dir / "done" / "pseudo-label" / "_all.done").unlink()
    code, _, err = run_cli(args, capsys)
    assert code == 0 and "0000 already done" in err and "0001 already done" in err
    code, out, err = run_cli(
        [
            "evaluate",
            "--pred",
            str(labels),
            "--dataset",
            "synthetic",
            "--root",
            str(synthetic_root),
            "--quiet",
            "--metrics",
            "stq",
        ],
        capsys,
    )
    assert code == 0 and "STQ" in out, err
