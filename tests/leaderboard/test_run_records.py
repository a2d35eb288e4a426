"""Records written by ``vpsbench run-method``: the model that made them and a rerunnable command."""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.leaderboard.fixtures import SEQUENCES, write_predictions, write_tiny_kitti_step
from vpsbench.cli import app
from vpsbench.leaderboard.store import check_for_submission
from vpsbench.methods.base import build_config
from vpsbench.methods.registry import method_class
from vpsbench.methods.runner import RunRequest, command_line, model_kind, run_method
from vpsbench.records import ResultRecord, read_record

#: Small but real stand-in settings for the 12×16 frames of the tiny split.
SMALL = ("num_pseudo_classes=4", "min_instance_area=2")


@pytest.fixture
def tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Work in ``tmp_path`` with the tiny KITTI-STEP split as ``$VPSBENCH_DATA/kitti-step``."""
    write_tiny_kitti_step(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VPSBENCH_DATA", str(tmp_path / "data"))
    return tmp_path


def _run(request: RunRequest) -> ResultRecord:
    outcome = run_method(request, log=lambda _: None)
    assert outcome.record_path is not None
    return read_record(outcome.record_path)


def test_a_stand_in_run_is_flagged_and_its_command_regenerates_it(tiny: Path) -> None:
    # The tiny copy holds two of KITTI-STEP's nine val sequences: a subset named on purpose.
    record = _run(RunRequest("cups-sort", "kitti-step", overrides=SMALL, sequences=SEQUENCES))
    assert record.model == "stand-in" and record.is_stand_in
    assert record.command == (
        "vpsbench run-method cups-sort --dataset kitti-step "
        "--set num_pseudo_classes=4 --set min_instance_area=2 --sequences 0002,0006"
    )
    assert record.notes is not None and record.notes.startswith("weight-free stand-in, NOT")
    check_for_submission(record)
    assert record.predictions is not None
    first = record.predictions.sha256

    shutil.rmtree(tiny / "runs")
    words = shlex.split(record.command)
    assert words[0] == "vpsbench"
    result = CliRunner().invoke(app, words[1:])
    assert result.exit_code == 0, result.output
    again = read_record(tiny / "runs" / "cups-sort-kitti-step-val" / "record.json")
    assert again.predictions is not None and again.predictions.sha256 == first
    assert again.command == record.command and again.model == "stand-in"


@pytest.mark.parametrize(
    ("method", "settings", "finished", "model"),
    [
        ("depthg-videocutler", (), (), "stand-in"),  # writes no mode.json
        ("depthg-videocutler", ("weights=v.pth", "depthg_weights=d.ckpt"), (), "published"),
        ("cups-sort", ("weights=cups.ckpt",), (), "published"),
        ("cups-sort", ("per_frame=preds", "weights=cups.ckpt"), (), "external"),
        ("videocups", (), ("pseudo-label", "train", "predict"), "trained"),
        ("videocups", (), ("pseudo-label",), None),
    ],
)
def test_the_model_follows_the_settings_without_a_mode_file(
    tmp_path: Path, method: str, settings: tuple[str, ...], finished: tuple[str, ...], model: str
) -> None:
    cls = method_class(method)
    instance = cls(build_config(cls.config_class, {}, settings))
    assert model_kind(instance, tmp_path, finished) == model


def test_the_mode_file_wins_and_any_stand_in_is_a_stand_in(tmp_path: Path) -> None:
    cls = method_class("cups-sort")
    instance = cls(build_config(cls.config_class, {}, ("weights=cups.ckpt",)))
    (tmp_path / "predict").mkdir()
    (tmp_path / "predict" / "mode.json").write_text('{"mode": "published weights"}\n')
    assert model_kind(instance, tmp_path) == "published"
    (tmp_path / "cluster").mkdir()
    (tmp_path / "cluster" / "mode.json").write_text('{"mode": "weight-free stand-in"}\n')
    assert model_kind(instance, tmp_path) == "stand-in"


def test_external_per_frame_predictions_are_not_a_stand_in(tiny: Path) -> None:
    per_frame = write_predictions(tiny / "data" / "kitti-step", tiny / "per-frame")
    record = _run(
        RunRequest(
            "cups-sort", "kitti-step", overrides=(f"per_frame={per_frame}",), sequences=SEQUENCES
        )
    )
    assert record.model == "external" and not record.is_stand_in
    check_for_submission(record)


def test_the_command_names_only_what_was_asked() -> None:
    request = RunRequest(
        "videocups",
        "synthetic",
        root=Path("/data/my synth"),
        split="val",
        protocol={"label_space": "cityscapes-19"},
        config_file=Path("c.yaml"),
        overrides=("train_set=optim.steps=5,loss.drop_loss=false",),
        device="cuda:1",
        sequences=("0001", "0002"),
    )
    words = shlex.split(command_line(request, ("pseudo-label", "train")))
    assert words == [
        "vpsbench", "run-method", "videocups", "--dataset", "synthetic",
        "--root", "/data/my synth", "--split", "val", "--protocol", "label_space=cityscapes-19",
        "--stage", "pseudo-label", "--stage", "train", "--config", "c.yaml",
        "--set", "train_set=optim.steps=5,loss.drop_loss=false", "--device", "cuda:1",
        "--sequences", "0001,0002",
    ]  # fmt: skip
    assert command_line(RunRequest("cups-sort", "waymo")) == (
        "vpsbench run-method cups-sort --dataset waymo"
    )
