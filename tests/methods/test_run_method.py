"""`vpsbench run-method` end to end on a tiny synthetic split: every baseline, resume, records."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.cli_runner import run_cli
from vpsbench.datasets import open_dataset
from vpsbench.datasets.synthetic import prepare_synthetic
from vpsbench.formats.step import write_step_png
from vpsbench.records import read_record
from vpsbench.video import PanopticFrame

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
    args = run_args(
        "videocups",
        synthetic_root,
        run_dir,
        "--set",
        "workers=1",
        "--set",
        "train_split=val",
        "--stage",
        "pseudo-label",
    )
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


def test_videocups_pseudo_labels_trains_predicts_resumes_and_is_scored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = prepare_synthetic(
        tmp_path / "synthetic",
        videos=2,
        frames=4,
        height=64,
        width=128,
        seed=2,
        splits=["val"],
        workers=1,
    )
    run_dir = tmp_path / "vc"
    training = (
        "train_set=optim.steps=3,optim.checkpoint_every=2,model.input_height=64,"
        "model.input_width=128,loss.roi_batch_size_per_image=16,augment.self_enhance_start=0"
    )
    args = run_args(
        "videocups", root, run_dir, "--set", "workers=1", "--set", "flow=oracle", "--set", training
    )
    code, _, err = run_cli([*args, "--stage", "pseudo-label"], capsys)
    assert code == 0, err
    assert "has no train split yet: generating it" in err  # the train split is made on demand
    assert len(list((run_dir / "pseudo-label" / "labels").rglob("*.png"))) == 8
    # Videos this small give no moving-object pseudo-labels, so the training stage is checked
    # on ground-truth "pseudo-labels" (19 classes, things 11..18) written over stage 1's.
    dataset = open_dataset("synthetic", root)
    for sequence in dataset.sequences("train"):
        for frame in sequence.frames:
            truth = dataset.load_ground_truth("train", frame)
            path = run_dir / "pseudo-label" / "labels" / frame.sequence / f"{frame.name}.png"
            write_step_png(
                path,
                PanopticFrame(np.where(truth.semantic < 0, 255, truth.semantic), truth.instance),
            )
    (run_dir / "pseudo-label" / "summary.json").write_text(
        json.dumps(
            {"thing_pseudo_classes": list(range(11, 19)), "stuff_pseudo_classes": list(range(11))}
        )
    )
    code, out, err = run_cli(args, capsys)
    assert code == 0, err
    assert "pseudo-label: already done" in err
    summary = json.loads((run_dir / "train" / "summary.json").read_text())
    assert summary["steps"] == 3 and summary["config"]["model"]["architecture"] == "small"
    metrics = [json.loads(line) for line in (run_dir / "train" / "metrics.jsonl").open()]
    assert [m["step"] for m in metrics if "losses" in m][-1] == 3
    assert (run_dir / "train" / "model_final.pt").is_file()
    assert len(list((run_dir / "predictions").rglob("*.png"))) == 8
    results = json.loads((run_dir / "results.json").read_text())
    assert results["counts"] == {"sequences": 2, "frames": 8} and "STQ" in out
    assert read_record(run_dir / "record.json").method == "videocups"
    # Every stage is done: a second run skips them all and scores the same predictions.
    code, _, err = run_cli(args, capsys)
    assert code == 0 and "train: already done" in err and "predict: already done" in err
    assert json.loads((run_dir / "results.json").read_text())["metrics"] == results["metrics"]


def test_videocups_train_stage_says_when_pseudo_labels_are_missing(
    synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = run_args(
        "videocups", synthetic_root, tmp_path / "vc", "--set", "train_split=val", "--stage", "train"
    )
    code, _, err = run_cli(args, capsys)
    assert code == 2 and "summary.json" in err and "run the pseudo-label stage first" in err


def test_depthg_videocutler_without_any_instance_in_the_split(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 16×32 frames: the stand-in's smallest object (30 px) exceeds its largest (5 % of 512 px),
    # so no instance exists anywhere; the thing/stuff split must see all classes as stuff.
    root = prepare_synthetic(
        tmp_path / "tiny",
        videos=1,
        frames=3,
        height=16,
        width=32,
        seed=2,
        splits=["val"],
        workers=1,
    )
    run_dir = tmp_path / "run"
    code, _, err = run_cli(run_args("depthg-videocutler", root, run_dir), capsys)
    assert code == 0, err
    assert len(list((run_dir / "predictions").rglob("*.png"))) == 3


def test_videocups_pseudo_labels_with_worker_processes_after_training_s(
    synthetic_root: Path, tmp_path: Path
) -> None:
    # S's DepthG head trains in the parent with torch's threads (2 here), then worker processes
    # label the sequences. Forked workers hung in futex waits in a full-size CLI run (256×512,
    # 120 views); they are spawned now. The hang did not reproduce at this test's size, so this
    # test guards the worker path itself, in a subprocess with a time limit.
    run_dir = tmp_path / "vc"
    args = run_args(
        "videocups",
        synthetic_root,
        run_dir,
        *("--set", "workers=2", "--set", "train_split=val", "--stage", "pseudo-label"),
        *("--set", "depthg_batches=4", "--set", "depthg_frames=4"),
    )
    completed = subprocess.run(
        [sys.executable, "-m", "vpsbench", *args],
        env={**os.environ, "OMP_NUM_THREADS": "2"},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    labels = sorted((run_dir / "pseudo-label" / "labels").rglob("*.png"))
    assert len(labels) == 12
    assert (run_dir / "pseudo-label" / "depthg" / "depthg.ckpt").is_file()
    # The same labels from one in-process worker (torch on its default threads outside).
    single = tmp_path / "vc-single"
    swaps = {"workers=2": "workers=1", str(run_dir): str(single)}
    code = subprocess.run(
        [sys.executable, "-m", "vpsbench", *[swaps.get(a, a) for a in args]],
        env={**os.environ, "OMP_NUM_THREADS": "2"},
        capture_output=True,
        timeout=240,
        check=False,
    ).returncode
    assert code == 0
    for path in labels:
        twin = single / path.relative_to(run_dir)
        assert twin.read_bytes() == path.read_bytes(), path
