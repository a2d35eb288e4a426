"""Bad inputs end in one clear error line, before any long work, and leave nothing behind.

Regression tests of issue 17, part A: CLI options and output paths of ``evaluate``/``validate``,
``run-method`` run directories and settings, the data a run directory was made on, NPZ class
ids, and temporary files of killed writers.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.cli_runner import run_cli
from vpsbench.datasets import open_dataset
from vpsbench.datasets.synthetic import prepare_synthetic
from vpsbench.errors import InputError, VpsbenchError
from vpsbench.formats.atomic import atomic_write_text
from vpsbench.formats.npz import encode_npz
from vpsbench.methods.base import MethodConfig, Range, build_config, read_config_file
from vpsbench.methods.registry import method_class
from vpsbench.predictions import MAX_CLASS_ID

FAST = ["--set", "num_pseudo_classes=4"]


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    return prepare_synthetic(
        root, videos=1, frames=2, height=24, width=32, seed=3, splits=["val"], workers=1
    )


def write_npz_predictions(root: Path, out: Path, poke: int | None = None) -> list[Path]:
    """Ground truth as NPZ predictions; ``poke`` (if given) replaces the first pixel's class."""
    dataset = open_dataset("synthetic", root)
    written = []
    for sequence in dataset.sequences("val"):
        for frame in sequence.frames:
            truth = dataset.load_ground_truth("val", frame)
            semantic = np.where(truth.semantic < 0, 0, truth.semantic).astype(np.int32)
            if poke is not None:
                semantic[0, 0] = poke
            path = out / frame.sequence / f"{frame.name}.npz"
            path.parent.mkdir(parents=True, exist_ok=True)
            arrays = {"semantic": semantic, "instance": truth.instance.astype(np.int32)}
            path.write_bytes(encode_npz(arrays))
            written.append(path)
    return written


def evaluate_args(root: Path, preds: Path, *extra: str) -> list[str]:
    return ["evaluate", "--pred", str(preds), "-d", "synthetic", "--root", str(root), *extra]


def validate_args(root: Path, preds: Path, *extra: str) -> list[str]:
    return ["validate", "--pred", str(preds), "-d", "synthetic", "--root", str(root), *extra]


def assert_one_error(code: int, out: str, err: str, *fragments: str) -> None:
    """Exit 2 with one ``error:`` line naming the problem, and no evaluation table printed."""
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err and "STQ" not in out
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# --- evaluate / validate options, checked before the evaluation runs -------------------------


@pytest.mark.parametrize("command", ["evaluate", "validate"])
def test_unknown_prediction_format(
    command: str, synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    preds = tmp_path / "preds"
    write_npz_predictions(synthetic_root, preds)
    args = evaluate_args if command == "evaluate" else validate_args
    code, out, err = run_cli(args(synthetic_root, preds, "--pred-format", "foo"), capsys)
    assert_one_error(code, out, err, "--pred-format", "'foo'")


@pytest.mark.parametrize("things", ["a,b", "1,x", "-1", "70000"])
def test_bad_pred_things(
    things: str, synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    preds = tmp_path / "preds"
    write_npz_predictions(synthetic_root, preds)
    code, out, err = run_cli(
        evaluate_args(synthetic_root, preds, f"--pred-things={things}"), capsys
    )
    assert_one_error(code, out, err, "--pred-things")


@pytest.mark.parametrize(
    ("option", "target", "extra"),
    [
        ("--output", "folder", []),
        ("--save-record", "folder", ["--method", "m"]),
        ("--output", "afile/x.json", []),
        ("--save-record", "afile/deeper/r.json", ["--method", "m"]),
    ],
)
def test_unwritable_outputs_fail_before_the_evaluation(
    option: str,
    target: str,
    extra: list[str],
    synthetic_root: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    preds = tmp_path / "preds"
    write_npz_predictions(synthetic_root, preds)
    (tmp_path / "folder").mkdir()
    (tmp_path / "afile").write_text("mine\n")
    args = evaluate_args(synthetic_root, preds, option, str(tmp_path / target), *extra)
    code, out, err = run_cli(args, capsys)
    assert_one_error(code, out, err, option)
    assert (tmp_path / "afile").read_text() == "mine\n"
    assert list((tmp_path / "folder").iterdir()) == []


@pytest.mark.parametrize(
    "extra",
    [
        ["--method", "Not A Slug"],
        ["--method", "a/b"],
        ["--method", "ok", "--method-version", ""],
        ["--output", "same.json", "--method", "m"],
    ],
)
def test_record_identity_and_same_file_checked_first(
    extra: list[str], synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    preds = tmp_path / "preds"
    write_npz_predictions(synthetic_root, preds)
    record = tmp_path / "same.json"
    extra = [str(tmp_path / item) if item == "same.json" else item for item in extra]
    args = evaluate_args(synthetic_root, preds, "--save-record", str(record), *extra)
    code, out, err = run_cli(args, capsys)
    assert_one_error(code, out, err)
    assert not record.exists()


# --- NPZ class ids: bounded cost, only -1 as void, validate refuses what evaluate does -------


@pytest.mark.parametrize("value", [2**31 - 1, 8_191_000, MAX_CLASS_ID + 1, -5, -(2**31)])
def test_npz_class_ids_out_of_range_are_refused_by_both_commands(
    value: int, synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    preds = tmp_path / "preds"
    files = write_npz_predictions(synthetic_root, preds, poke=value)
    started = time.perf_counter()
    code, out, err = run_cli(evaluate_args(synthetic_root, preds, "--quiet"), capsys)
    assert time.perf_counter() - started < 20
    assert_one_error(code, out, err, str(files[0]), str(value))
    code, out, err = run_cli(validate_args(synthetic_root, preds), capsys)
    assert code == 1 and str(files[0]) in err and str(value) in err
    assert "ok:" not in out


def test_largest_supported_class_id_is_scored(
    synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    preds = tmp_path / "preds"
    write_npz_predictions(synthetic_root, preds, poke=MAX_CLASS_ID)
    output = tmp_path / "out.json"
    code, _, err = run_cli(
        evaluate_args(synthetic_root, preds, "--quiet", "--output", str(output)), capsys
    )
    assert code == 0, err
    assert 0.0 < json.loads(output.read_text())["metrics"]["SQ"] <= 1.0
    assert run_cli(validate_args(synthetic_root, preds), capsys)[0] == 0


# --- run-method: run directory, run.json, settings, data identity --------------------------


def run_args(root: Path, run_dir: Path, *extra: str, method: str = "cups-sort") -> list[str]:
    return [
        "run-method",
        method,
        "-d",
        "synthetic",
        "--root",
        str(root),
        "--run-dir",
        str(run_dir),
        *extra,
    ]


def test_run_dir_that_is_a_file(
    synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    afile = tmp_path / "afile"
    afile.write_text("mine\n")
    for run_dir in (afile, afile / "run"):
        code, out, err = run_cli(run_args(synthetic_root, run_dir, *FAST), capsys)
        assert_one_error(code, out, err, "--run-dir")
    assert afile.read_text() == "mine\n"


@pytest.mark.parametrize("garbage", ["{garbage", "[1]", "null", '"text"'])
def test_garbage_run_manifest(
    garbage: str, synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(garbage)
    code, out, err = run_cli(run_args(synthetic_root, run_dir, *FAST), capsys)
    assert_one_error(code, out, err, "run.json", "not a run manifest")
    assert (run_dir / "run.json").read_text() == garbage


BAD_SETTINGS = {
    "cups-sort": [
        "num_pseudo_classes=0",
        "num_pseudo_classes=-3",
        "num_pseudo_classes=100000",
        "iou_threshold=nan",
        "iou_threshold=5",
        "iou_threshold=inf",
        "min_hits=-1",
        "max_age=-1",
        "max_instance_fraction=-0.5",
        "thing_ratio=1.5",
        "seed=-1",
    ],
    "depthg-videocutler": [
        "num_pseudo_classes=0",
        "align_iou=nan",
        "clip_length=0",
        "psi_thing_stuff=-1",
    ],
    "videocups": [
        "num_pseudo_classes=100000",
        "tau_match=2",
        "alpha=-0.1",
        "tau_depth=nan",
        "workers=0",
        "psi_thing=inf",
    ],
}


@pytest.mark.parametrize(
    ("method", "setting"),
    [(method, setting) for method, settings in BAD_SETTINGS.items() for setting in settings],
)
def test_settings_out_of_range_fail_before_any_stage(
    method: str,
    setting: str,
    synthetic_root: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run_dir = tmp_path / "run"
    code, out, err = run_cli(
        run_args(synthetic_root, run_dir, "--set", setting, method=method), capsys
    )
    assert_one_error(code, out, err, setting.split("=")[0])
    assert not run_dir.exists()


def test_settings_from_a_file_are_range_checked_too(tmp_path: Path) -> None:
    config_class = method_class("cups-sort").config_class
    path = tmp_path / "c.yaml"
    path.write_text("iou_threshold: 7\n")
    with pytest.raises(VpsbenchError, match="iou_threshold"):
        build_config(config_class, read_config_file(path))
    broken = tmp_path / "c.json"
    broken.write_text("{garbage")
    with pytest.raises(InputError, match="invalid JSON"):
        read_config_file(broken)


def test_range_declarations() -> None:
    from dataclasses import dataclass, field

    @dataclass(frozen=True)
    class Example(MethodConfig):
        share: float = field(default=0.5, metadata={"range": Range(0, 1, low_open=True)})
        count: int = field(default=1, metadata={"range": Range(1)})
        free: float = 1.0

    assert build_config(Example, {}, ["share=1", "count=7", "free=-3"]) == Example(1.0, 7, -3.0)
    for bad in ("share=0", "share=1.01", "count=0", "free=nan", "free=-inf"):
        with pytest.raises(VpsbenchError, match=bad.split("=")[0]):
            build_config(Example, {}, [bad])
    # every shipped method's defaults lie in their declared ranges
    for name in BAD_SETTINGS:
        cls = method_class(name).config_class
        assert build_config(cls, {}, []) == cls()


def test_run_dir_reused_on_other_data_is_refused(
    synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    code, _, err = run_cli(run_args(synthetic_root, run_dir, *FAST), capsys)
    assert code == 0, err
    manifest = json.loads((run_dir / "run.json").read_text())
    assert manifest["data"]["root"] == str(synthetic_root.resolve())
    kept = {name: (run_dir / name).read_bytes() for name in ("results.json", "record.json")}
    other = tmp_path / "other"
    shutil.copytree(synthetic_root, other)
    code, out, err = run_cli(run_args(other, run_dir, *FAST), capsys)
    assert_one_error(code, out, err, "other data", str(synthetic_root.resolve()))
    assert {name: (run_dir / name).read_bytes() for name in kept} == kept
    # the same data resumes; a run.json written before identities were recorded is adopted
    del manifest["data"]
    (run_dir / "run.json").write_text(json.dumps(manifest))
    code, _, err = run_cli(run_args(synthetic_root, run_dir, *FAST), capsys)
    assert code == 0 and "already done" in err
    assert "data" in json.loads((run_dir / "run.json").read_text())


# --- atomic writes: no temporary file survives a killed writer ------------------------------

_SLOW_WRITER = """
import sys, time
from vpsbench.formats.atomic import atomic_write
with atomic_write(sys.argv[1]) as handle:
    handle.write(b"partial")
    handle.flush()
    print("writing", flush=True)
    time.sleep(60)
"""


def _start_slow_writer(target: Path) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", _SLOW_WRITER, str(target)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "writing"
    return process


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_terminated_writer_removes_its_temporary_file(signum: int, tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    target.write_text("old\n")
    process = _start_slow_writer(target)
    assert len(list(tmp_path.glob(".out.json.*.tmp"))) == 1
    process.send_signal(signum)
    assert process.wait(timeout=30) == 128 + signum
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]
    assert target.read_text() == "old\n"


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_leftover_of_a_killed_writer_is_removed_by_the_next_write(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    process = _start_slow_writer(target)
    process.kill()
    process.wait(timeout=30)
    assert len(list(tmp_path.glob(".out.json.*.tmp"))) == 1
    atomic_write_text(target, "new\n")
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]
    assert target.read_text() == "new\n"


def test_atomic_write_onto_a_folder_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    (tmp_path / "afile").write_text("x")
    for target in (tmp_path / "folder", tmp_path / "afile" / "x.json"):
        with pytest.raises(InputError, match=str(target)):
            atomic_write_text(target, "data")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "folder"]


def test_more_pseudo_classes_than_feature_samples_is_one_error_line() -> None:
    from vpsbench.clustering import fit_cosine_kmeans

    samples = np.random.default_rng(0).normal(size=(5, 3))
    with pytest.raises(VpsbenchError, match="5 feature samples cannot make 8 clusters"):
        fit_cosine_kmeans(samples, 8)


def test_clip_overlap_must_be_smaller_than_clip_length() -> None:
    from vpsbench_baselines.depthg_videocutler import DepthGVideoCutLERConfig

    with pytest.raises(VpsbenchError, match="clip_overlap=30: must be smaller than clip_length=30"):
        build_config(DepthGVideoCutLERConfig, overrides=["clip_overlap=30"])
