"""Exported tables: CSV parses back to the same numbers, Markdown and LaTeX escape their specials.

The renderer cases are written out by hand; ``evaluate --format`` is checked against the
results JSON of the same run, and ``leaderboard export`` against the records it was built from.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from tests.cli_runner import run_cli
from tests.leaderboard.fixtures import evaluated_results, reported_record, write_tiny_kitti_step
from tests.leaderboard.fixtures import write_predictions as write_tiny_predictions
from vpsbench.datasets import open_dataset
from vpsbench.datasets.synthetic import prepare_synthetic
from vpsbench.demo import write_demo_predictions
from vpsbench.exports import (
    Column,
    ExportTable,
    latex_text,
    markdown_text,
    render_table,
    to_csv,
    to_latex,
    to_markdown,
)
from vpsbench.leaderboard.store import submit_record
from vpsbench.records import record_from_results

HAND_TABLE = ExportTable(
    columns=(
        Column("Method", "Method", kind="text"),
        Column("a STQ", "STQ", "Data A"),
        Column("a AQ", "AQ", "Data A"),
        Column("b IDSW", "IDSW", "Data_B", kind="count"),
    ),
    rows=(("x|y & 50%", 0.5625, None, 3.0), ("plain", 0.1, 0.25, None)),
    notes=("in % | note",),
)


def test_markdown_escapes_and_shows_percent() -> None:
    assert markdown_text("a|b") == "a\\|b"
    assert markdown_text("*x* <b>") == "\\*x\\* &lt;b&gt;"
    assert to_markdown(HAND_TABLE) == (
        "| Method | a STQ | a AQ | b IDSW |\n"
        "|:--|--:|--:|--:|\n"
        "| x\\|y &amp; 50% | 56.2 | – | 3 |\n"
        "| plain | 10.0 | 25.0 | – |\n"
        "\n"
        "in % \\| note\n"
    )


def test_latex_escapes_every_special_character() -> None:
    assert latex_text(r"50% & $x_1#{y}~^\ ") == (
        r"50\% \& \$x\_1\#\{y\}\textasciitilde{}\textasciicircum{}\textbackslash{} "
    )
    assert latex_text("CUPS† – SORT") == r"CUPS$^\dagger$ -- SORT"
    assert to_latex(HAND_TABLE) == (
        "% in \\% | note\n"
        "\\begin{tabular}{lrrr}\n"
        "\\toprule\n"
        " & \\multicolumn{2}{c}{Data A} & \\multicolumn{1}{c}{Data\\_B} \\\\\n"
        "\\cmidrule(lr){2-3} \\cmidrule(lr){4-4}\n"
        "Method & STQ & AQ & IDSW \\\\\n"
        "\\midrule\n"
        "x|y \\& 50\\% & 56.2 & -- & 3 \\\\\n"
        "plain & 10.0 & 25.0 & -- \\\\\n"
        "\\bottomrule\n"
        "\\end{tabular}\n"
    )


def test_csv_keeps_full_precision() -> None:
    text = to_csv(HAND_TABLE)
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["Method", "a STQ", "a AQ", "b IDSW"]
    assert rows[1] == ["x|y & 50%", "0.5625", "", "3.0"]
    assert float(rows[2][1]) == 0.1 and float(rows[2][2]) == 0.25
    assert render_table(HAND_TABLE, "csv") == text


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    folder = tmp_path_factory.mktemp("exports")
    root = prepare_synthetic(
        folder / "data", videos=2, frames=3, height=48, width=96, seed=5, splits=["val"], workers=1
    )
    preds = write_demo_predictions(open_dataset("synthetic", root), "val", folder / "preds")
    return ["evaluate", "--pred", str(preds), "-d", "synthetic", "--root", str(root), "--quiet"]


def test_evaluate_csv_parses_back_to_the_results_numbers(
    synthetic_run: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "r.json"
    args = [*synthetic_run, "--metrics", "stq,vpq,pq,clear", "--output", str(output)]
    code, out, err = run_cli([*args, "--format", "csv"], capsys)
    assert code == 0, err
    assert f"results written to {output}" in err  # stdout holds only the table
    metrics = json.loads(output.read_text())["metrics"]
    (row,) = list(csv.DictReader(io.StringIO(out)))
    assert row.pop("dataset") == "synthetic" and row.pop("split") == "val"
    expected = {name: metrics[name] for name in ("STQ", "AQ", "SQ", "VPQ", "VPQ_th", "VPQ_st")}
    expected |= {name: metrics["PQ"][name] for name in ("PQ", "PQ_th", "PQ_st")}
    expected |= {name: metrics[name] for name in ("MOTA", "MOTP", "MOTSA", "sMOTSA", "IDSW")}
    expected["Frag"] = metrics["Frag"]
    assert list(row)[:3] == ["STQ", "AQ", "SQ"]
    assert {name: float(value) for name, value in row.items()} == expected


@pytest.mark.parametrize("output_format", ["markdown", "latex"])
def test_evaluate_markdown_and_latex_show_percent(
    output_format: str,
    synthetic_run: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    output = tmp_path / "r.json"
    code, out, err = run_cli(
        [*synthetic_run, "--output", str(output), "--format", output_format], capsys
    )
    assert code == 0, err
    metrics = json.loads(output.read_text())["metrics"]
    shown = [f"{100 * metrics[n]:.1f}" for n in ("STQ", "AQ", "SQ", "VPQ")]
    shown.append(f"{100 * metrics['PQ']['PQ']:.1f}")
    cells = (
        out.splitlines()[2].strip("| ").split(" | ")
        if output_format == "markdown"
        else next(line for line in out.splitlines() if line.startswith("synthetic"))
        .removesuffix(" \\\\")
        .split(" & ")
    )
    assert cells[:2] == ["synthetic", "val"]
    assert [cells[2], cells[3], cells[4], cells[5], cells[8]] == shown
    if output_format == "latex":
        assert "\\multicolumn{3}{c}{VPQ}" in out and "VPQ\\_th" in out


def test_unknown_format_is_refused(
    synthetic_run: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli([*synthetic_run, "--format", "html"], capsys)
    assert code == 2 and "--format" in err and "STQ" not in out


# --- leaderboard export -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Reported records on the paper's four datasets (filed out of order), one reproduced on
    KITTI-STEP and a stand-in on synthetic data."""
    folder = tmp_path_factory.mktemp("paper-table")
    store = folder / "store"
    for dataset, split, numbers in (
        ("mots", "train", (0.186, 0.105, 0.33)),
        ("waymo", "validation", (0.184, 0.107, 0.316)),
        ("kitti-step", "val", (0.373, 0.436, 0.32)),
        ("cityscapes-vps", "val", (0.222, 0.153, 0.323)),
    ):
        submit_record(
            store, reported_record("videocups", "VideoCUPS", numbers, dataset=dataset, split=split)
        )
    submit_record(store, reported_record("cups-sort", "CUPS† + SORT", (0.329, 0.354, 0.305)))
    dataset_root = write_tiny_kitti_step(folder / "data")
    results = evaluated_results(dataset_root, write_tiny_predictions(dataset_root, folder / "p"))
    submit_record(store, record_from_results(results, "mine", "1", method_name="Mine & Co"))
    stand_in = record_from_results(results, "u2seg-sort", "1", model="stand-in")
    submit_record(store, stand_in.model_copy(update={"dataset": "synthetic"}))
    return store


def test_leaderboard_csv_in_the_papers_column_order(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(
        ["leaderboard", "export", "--format", "csv", "--store", str(store)], capsys
    )
    assert code == 0, err
    rows = list(csv.reader(io.StringIO(out)))
    header = rows[0]
    boards = ["cityscapes-vps val", "kitti-step val", "waymo validation", "mots train"]
    expected = ["Method", "Provenance"]
    expected += [
        f"{board} {metric}"
        for board in boards
        for metric in ("STQ", "AQ", "SQ", *(("VPQ", "PQ") if board == "kitti-step val" else ()))
    ]  # VPQ and PQ only where a row has them: the reproduced record on KITTI-STEP
    assert header[: len(expected)] == expected
    by_name = {row[0]: dict(zip(header, row, strict=True)) for row in rows[1:]}
    videocups = by_name["VideoCUPS"]
    assert videocups["Provenance"] == "reported"
    assert float(videocups["kitti-step val STQ"]) == 0.373
    assert float(videocups["mots train SQ"]) == 0.33
    mine = json.loads(next(store.glob("mine/*.json")).read_text())["metrics"]
    assert float(by_name["Mine & Co"]["kitti-step val STQ"]) == mine["stq"]
    assert float(by_name["Mine & Co"]["kitti-step val VPQ"]) == mine["vpq"]
    assert by_name["Mine & Co"]["waymo validation STQ"] == ""
    # the stand-in is named as the board names it, after every other row, on synthetic data
    assert rows[-1][0] == "u2seg-sort (weight-free stand-in)"
    assert float(by_name[rows[-1][0]]["synthetic val STQ"]) == mine["stq"]
    assert header.index("synthetic val STQ") > header.index("mots train SQ")


def test_leaderboard_markdown_and_latex(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "table.tex"
    args = ["leaderboard", "export", "--store", str(store), "-d", "kitti-step"]
    code, _, err = run_cli([*args, "--format", "latex", "--output", str(target)], capsys)
    assert code == 0, err
    latex = target.read_text()
    assert "\\multicolumn{5}{c}{KITTI-STEP}" in latex  # STQ AQ SQ VPQ PQ: one row has VPQ/PQ
    assert "CUPS$^\\dagger$ + SORT & reported & 32.9 & 35.4 & 30.5 & -- & --" in latex
    assert "Mine \\& Co & reproduced" in latex and "Waymo" not in latex
    code, _, err = run_cli([*args, "--format", "latex", "--output", str(target)], capsys)
    assert code == 2 and "--overwrite" in err and target.read_text() == latex
    code, out, err = run_cli([*args, "--format", "markdown"], capsys)
    assert code == 0, err
    assert "| CUPS† + SORT | reported | 32.9 | 35.4 | 30.5 | – | – |" in out
    code, _, err = run_cli(["leaderboard", "export", "--store", str(store), "-d", "nope"], capsys)
    assert code == 2 and "no records for dataset 'nope'" in err
