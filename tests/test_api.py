"""The Python API: ``vpsbench.evaluate`` equals the CLI, its tables hold the JSON's numbers.

Everything runs the real evaluator on a tiny synthetic split (2 videos × 3 frames) with the demo's
documented noisy predictions; the expected numbers are the CLI's results file and relations
between metrics (STQ = √(AQ·SQ), VPQ = mean over windows, PQ = VPQ at k = 1), not constants.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import vpsbench
from tests.cli_runner import run_cli
from vpsbench.api import TABLES, Results, load_results
from vpsbench.datasets import open_dataset
from vpsbench.datasets.synthetic import prepare_synthetic
from vpsbench.demo import write_demo_predictions
from vpsbench.errors import InputError, VpsbenchError
from vpsbench.matching import MatchingMode

pd = pytest.importorskip("pandas", reason="the dataframe extra (pandas) is not installed")

ALL = "stq,vpq,pq,hota,clear,identity"


@dataclass(frozen=True)
class Submission:
    root: Path
    preds: Path


@pytest.fixture(scope="module")
def submission(tmp_path_factory: pytest.TempPathFactory) -> Submission:
    folder = tmp_path_factory.mktemp("api")
    root = prepare_synthetic(
        folder / "data", videos=2, frames=3, height=48, width=96, seed=3, splits=["val"], workers=1
    )
    preds = write_demo_predictions(open_dataset("synthetic", root), "val", folder / "preds")
    return Submission(root, preds)


@pytest.fixture(scope="module")
def results(submission: Submission) -> Results:
    return vpsbench.evaluate(submission.preds, "synthetic", root=submission.root, metrics=ALL)


def without_run(document: dict[str, Any]) -> dict[str, Any]:
    """The document less its ``run`` block (wall time differs between two runs)."""
    return {key: value for key, value in document.items() if key != "run"}


def test_api_equals_the_cli_results_file(
    submission: Submission, results: Results, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "cli.json"
    args = ["evaluate", "--pred", str(submission.preds), "-d", "synthetic"]
    args += ["--root", str(submission.root), "--metrics", ALL, "--quiet"]
    code, _, err = run_cli([*args, "--output", str(output)], capsys)
    assert code == 0, err
    from_file = json.loads(output.read_text())
    assert without_run(results.to_dict()) == without_run(from_file)
    assert set(from_file["run"]) == set(results.to_dict()["run"])
    code, out, err = run_cli([*args, "--format", "json"], capsys)
    assert code == 0, err
    assert without_run(json.loads(out)) == without_run(from_file)


def test_strings_and_enums_are_the_same_options(submission: Submission) -> None:
    common = {"root": submission.root, "metrics": ("stq",)}
    as_strings = vpsbench.evaluate(
        str(submission.preds), "synthetic", matching="majority", pred_things="5,6", **common
    )
    as_values = vpsbench.evaluate(
        submission.preds, "synthetic", matching=MatchingMode.MAJORITY, pred_things=[5, 6], **common
    )
    assert without_run(as_strings.to_dict()) == without_run(as_values.to_dict())
    assert as_values.to_dict()["protocol"]["matching"] == "majority"
    assert as_values.to_dict()["protocol"]["pseudo_things"] == [5, 6]


def test_progress_reports_every_sequence(submission: Submission) -> None:
    calls: list[tuple[int, int, str]] = []
    vpsbench.evaluate(
        submission.preds,
        "synthetic",
        root=submission.root,
        metrics="stq",
        sequences="0001,0000",
        progress=lambda done, total, name: calls.append((done, total, name)),
    )
    assert calls == [(0, 2, ""), (1, 2, "0001"), (2, 2, "0000")]


def test_summary_table(results: Results) -> None:
    document = results.to_dict()
    metrics = document["metrics"]
    summary = results.to_pandas("summary")
    assert summary.index.names == ["dataset", "split"]
    assert list(summary.index) == [("synthetic", "val")]
    row = summary.loc[("synthetic", "val")]
    for name in ("STQ", "AQ", "SQ", "VPQ", "VPQ_th", "VPQ_st", "HOTA", "IDF1", "MOTA", "IDSW"):
        assert row[name] == metrics[name]
    for name in ("PQ", "PQ_th", "PQ_st"):
        assert row[name] == metrics["PQ"][name]
    assert list(summary.columns[:3]) == ["STQ", "AQ", "SQ"]
    assert row["STQ"] == pytest.approx(math.sqrt(row["AQ"] * row["SQ"]), abs=1e-12)
    assert results.stq == metrics["STQ"] and results.pq == metrics["PQ"]["PQ"]
    assert results.to_pandas().equals(summary)  # the default table


def test_per_class_table(results: Results) -> None:
    document = results.to_dict()
    table = results.to_pandas("per_class")
    assert table.index.name == "class"
    assert list(table.columns) == ["kind", "IoU", "PQ", "SQ", "RQ", "TP", "FP", "FN"]
    protocol = document["protocol"]
    assert set(table.index) == set(protocol["thing_classes"]) | set(protocol["stuff_classes"])
    for name, iou in document["metrics"]["IoU_per_class"].items():
        assert table.loc[name, "IoU"] == iou
    for name, values in document["metrics"]["PQ"]["per_class"].items():
        for key in ("PQ", "SQ", "RQ", "TP", "FP", "FN"):
            assert table.loc[name, key] == values[key]
    assert str(table["TP"].dtype) == "Int64"
    assert set(table.loc[table["kind"] == "thing"].index) == set(protocol["thing_classes"])
    # SQ (STQ's) is the mean IoU over the classes
    assert table["IoU"].mean() == pytest.approx(document["metrics"]["SQ"], abs=1e-12)


def test_per_sequence_table(results: Results) -> None:
    table = results.to_pandas("per_sequence")
    sequences = results.to_dict()["per_sequence"]
    assert table.index.name == "sequence" and list(table.index) == ["0000", "0001"]
    assert list(table.columns) == ["frames", "tubes", "STQ", "AQ", "SQ"]
    for entry in sequences:
        row = table.loc[entry["sequence"]]
        assert [row[c] for c in table.columns] == [entry[c] for c in table.columns]
        assert row["STQ"] == pytest.approx(math.sqrt(row["AQ"] * row["SQ"]), abs=1e-12)
    assert table["frames"].sum() == results.to_dict()["counts"]["frames"]


def test_window_tables(results: Results) -> None:
    metrics = results.to_dict()["metrics"]
    windows = results.to_pandas("per_window")
    assert windows.index.name == "k" and list(windows.index) == [1, 2, 3]  # 3-frame videos
    assert list(windows.columns) == ["VPQ", "VPQ_th", "VPQ_st", "SQ", "RQ"]
    for k, window in metrics["VPQ_per_window"].items():
        assert windows.loc[int(k), "VPQ"] == window["PQ"]
        assert windows.loc[int(k), "VPQ_th"] == window["PQ_th"]
    assert windows["VPQ"].mean() == pytest.approx(metrics["VPQ"], abs=1e-12)
    assert windows.loc[1, "VPQ"] == pytest.approx(metrics["PQ"]["PQ"], abs=1e-12)
    per_class = results.to_pandas("per_window_class")
    assert per_class.index.names == ["k", "class"]
    total = sum(len(w["per_class"]) for w in metrics["VPQ_per_window"].values())
    assert per_class.shape == (total, 6)
    for k, window in metrics["VPQ_per_window"].items():
        for name, values in window["per_class"].items():
            assert per_class.loc[(int(k), name), "VPQ"] == values["PQ"]
            assert per_class.loc[(int(k), name), "FN"] == values["FN"]


def test_mapping_and_tracking_tables(results: Results) -> None:
    document = results.to_dict()
    mapping = results.to_pandas("mapping")
    assert mapping.index.name == "pseudo_class"
    assert {str(p): c for p, c in mapping["class"].items()} == document["mapping"]
    tracking = document["metrics"]["tracking"]
    table = results.to_pandas("tracking")
    assert table.index.name == "class"
    assert list(table.index) == [*tracking["per_class"], "cls_comb_cls_av", "cls_comb_det_av"]
    assert table.loc["cls_comb_cls_av", "HOTA"] == document["metrics"]["HOTA"]
    for name, values in tracking["per_class"].items():
        assert table.loc[name, "HOTA"] == values["HOTA"]
        assert table.loc[name, "IDF1"] == values["IDF1"]
    # the class average is the mean over the thing classes
    classes = table.drop(index=["cls_comb_cls_av", "cls_comb_det_av"])
    assert classes["HOTA"].mean() == pytest.approx(document["metrics"]["HOTA"], abs=1e-12)
    per_sequence = results.to_pandas("tracking_per_sequence")
    assert per_sequence.index.names == ["sequence", "class"]
    for sequence, by_class in tracking["per_sequence"].items():
        for name, values in by_class.items():
            assert per_sequence.loc[(sequence, name), "HOTA"] == values["HOTA"]


def test_tables_missing_metrics_are_clear_errors(submission: Submission) -> None:
    only_stq = vpsbench.evaluate(submission.preds, "synthetic", root=submission.root, metrics="stq")
    assert only_stq.tables == ("summary", "per_class", "per_sequence", "mapping")
    assert only_stq.vpq is None and only_stq.pq is None
    assert list(only_stq.to_pandas("per_class").columns) == ["kind", "IoU"]
    with pytest.raises(VpsbenchError, match="'per_window' needs VPQ"):
        only_stq.to_pandas("per_window")
    with pytest.raises(VpsbenchError, match="'tracking' needs tracking metrics"):
        only_stq.to_pandas("tracking")
    with pytest.raises(VpsbenchError, match="unknown table 'classes'; tables: summary"):
        only_stq.to_pandas("classes")


def test_missing_pandas_names_the_extra(results: Results, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # what `import pandas` sees without it
    with pytest.raises(VpsbenchError, match=r"vpsbench\[dataframe\]"):
        results.to_pandas()


def test_save_and_load_round_trip(results: Results, tmp_path: Path) -> None:
    path = results.save(tmp_path / "r.json")
    assert path.read_text() == results.to_json()
    loaded = load_results(path)
    assert loaded.to_dict() == results.to_dict() and loaded.evaluation is None
    for table in TABLES:
        pd.testing.assert_frame_equal(loaded.to_pandas(table), results.to_pandas(table))
    with pytest.raises(InputError, match="already exists; pass overwrite=True"):
        results.save(path)
    path.write_text("mine\n")
    results.save(path, overwrite=True)
    assert load_results(path).to_dict() == results.to_dict()
    copy = results.to_dict()
    copy["metrics"]["STQ"] = -1.0
    assert results.stq != -1.0  # to_dict hands out a copy


def test_loads_the_cli_output(
    submission: Submission, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "cli.json"
    args = ["evaluate", "--pred", str(submission.preds), "-d", "synthetic", "--quiet"]
    code, _, err = run_cli([*args, "--root", str(submission.root), "--output", str(output)], capsys)
    assert code == 0, err
    loaded = vpsbench.load_results(output)
    assert loaded.to_dict() == json.loads(output.read_text())
    assert loaded.to_json() == output.read_text()
    assert loaded.to_pandas().loc[("synthetic", "val"), "STQ"] == loaded.stq


def _broken(document: dict[str, Any], edit: str) -> Any:
    broken = json.loads(json.dumps(document))
    if edit == "old-version":
        broken["schema_version"] = 0
    elif edit == "no-version":
        del broken["schema_version"]
    elif edit == "no-stq":
        del broken["metrics"]["STQ"]
    elif edit == "text-aq":
        broken["metrics"]["AQ"] = "0.5"
    elif edit == "window-key":
        broken["metrics"]["VPQ_per_window"] = {"one": broken["metrics"]["VPQ_per_window"]["1"]}
    elif edit == "record":
        broken |= {"method": "m", "provenance": "reproduced"}
    elif edit == "list":
        broken = [broken]
    return broken


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ("old-version", "schema version 0"),
        ("no-version", "no schema_version"),
        ("no-stq", "metrics.STQ"),
        ("text-aq", "metrics.AQ"),
        ("window-key", "VPQ_per_window.one"),
        ("record", "leaderboard record"),
        ("list", "not a JSON object"),
    ],
)
def test_wrong_results_files_are_one_line_errors(
    results: Results, tmp_path: Path, edit: str, message: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(_broken(results.to_dict(), edit)))
    with pytest.raises(InputError) as caught:
        load_results(path)
    text = str(caught.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text


def test_unreadable_results_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such results file"):
        load_results(tmp_path / "absent.json")
    with pytest.raises(InputError, match="is a folder"):
        load_results(tmp_path)
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(InputError, match="not a JSON results file"):
        load_results(tmp_path / "x.json")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"matching": "nearest"}, "--matching 'nearest' is not a matching"),
        ({"pred_things": "a,b"}, "--pred-things expects comma-separated class ids"),
        ({"pred_things": [-1]}, "--pred-things expects"),
        ({"pred_things": [True]}, "--pred-things expects"),
        ({"pred_things": [70000]}, "--pred-things expects"),
        ({"metrics": "stq,iou"}, "unknown metrics ['iou']"),
        ({"workers": 0}, "--workers must be a positive integer, got 0"),
        ({"protocol": ["things"]}, "--protocol expects KEY=VALUE"),
        ({"split": "nope"}, "synthetic has no split 'nope'"),
        ({"pred_format": "jpeg"}, "--pred-format 'jpeg' is not a format"),
        ({"sequences": "0000,9999"}, "synthetic has no sequence 9999"),
        ({"void_as_class": "yes"}, "--void-as-class expects True or False"),
    ],
)
def test_bad_options_are_one_line_errors(
    submission: Submission, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(VpsbenchError) as caught:
        vpsbench.evaluate(submission.preds, "synthetic", root=submission.root, **options)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_import_stays_light_and_the_api_is_exported() -> None:
    code = (
        "import sys, vpsbench; "
        "heavy = [m for m in ('torch', 'pandas') if m in sys.modules]; "
        "assert not heavy, heavy; "
        "assert vpsbench.evaluate.__module__ == 'vpsbench.api'; "
        "assert vpsbench.Results.__name__ == 'Results'; "
        "assert 'pandas' not in sys.modules; "
        "from vpsbench import load_results"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])
    assert (Path(vpsbench.__file__).parent / "py.typed").is_file()
    with pytest.raises(AttributeError, match="no attribute 'evaluat'"):
        vpsbench.evaluat  # noqa: B018


def test_cli_record_is_made_from_the_same_numbers(
    submission: Submission, results: Results, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = tmp_path / "rec.json"
    args = ["evaluate", "--pred", str(submission.preds), "-d", "synthetic", "--quiet"]
    args += ["--root", str(submission.root), "--metrics", ALL, "--format", "json"]
    code, out, err = run_cli([*args, "--save-record", str(record), "--method", "m"], capsys)
    assert code == 0, err
    assert f"record written to {record}" in err and json.loads(out)["dataset"] == "synthetic"
    metrics = json.loads(record.read_text())["metrics"]
    assert metrics["stq"] == results.stq and metrics["pq"] == results.pq
    assert metrics["vpq"] == results.vpq
