"""Stand-in records and synthetic boards: a distinct badge, never ranked, never in the summary."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.leaderboard.fixtures import (
    evaluated_results,
    reported_record,
    write_predictions,
    write_tiny_kitti_step,
)
from vpsbench.datasets import open_dataset
from vpsbench.errors import VpsbenchError
from vpsbench.formats.step import write_step_png
from vpsbench.leaderboard.build import build_leaderboard
from vpsbench.leaderboard.consistency import WEIGHT_SETTINGS
from vpsbench.leaderboard.database import BoardKey, LeaderboardDatabase
from vpsbench.leaderboard.site import STAND_IN_LABEL
from vpsbench.leaderboard.store import load_store, submit_record
from vpsbench.records import ResultRecord, record_from_results
from vpsbench.video import PanopticFrame

KITTI = BoardKey("kitti-step", "val")
WAYMO = BoardKey("waymo", "validation")
SYNTHETIC = BoardKey("synthetic", "val")
STAND_IN_COMMAND = "vpsbench run-method cups-sort --dataset kitti-step"


def _perfect_predictions(dataset_root: Path, out: Path) -> Path:
    """The ground truth itself as predictions: the best possible STQ (1.0)."""
    dataset = open_dataset("kitti-step", dataset_root)
    for sequence in dataset.sequences("val"):
        for frame in sequence.frames:
            truth = dataset.load_ground_truth("val", frame)
            semantic = truth.semantic.copy()
            semantic[semantic < 0] = 255
            write_step_png(
                out / sequence.name / f"{frame.name}.png", PanopticFrame(semantic, truth.instance)
            )
    return out


@dataclass(frozen=True)
class Boards:
    """A store with a best-scoring stand-in, the method's real (reported) record on another
    board, a synthetic board, and the site built from it."""

    store: Path
    site: Path
    stand_in: ResultRecord
    noisy: ResultRecord


@pytest.fixture(scope="module")
def boards(tmp_path_factory: pytest.TempPathFactory) -> Boards:
    folder = tmp_path_factory.mktemp("stand-ins")
    root = write_tiny_kitti_step(folder / "data")
    perfect = evaluated_results(root, _perfect_predictions(root, folder / "perfect"))
    noisy_results = evaluated_results(root, write_predictions(root, folder / "noisy"))
    assert perfect["metrics"]["STQ"] == 1.0  # the stand-in is the best row by its numbers
    stand_in = record_from_results(
        perfect,
        "cups-sort",
        "0.1",
        method_name="CUPS + SORT",
        model="stand-in",
        command=STAND_IN_COMMAND,
    )
    noisy = record_from_results(
        noisy_results,
        "tiny-method",
        "1.0",
        model="trained",
        command="vpsbench run-method tiny-method --dataset kitti-step",
    )
    store = folder / "store"
    for record in (
        stand_in,
        noisy,
        reported_record(),
        reported_record("cups-sort", "CUPS + SORT", (0.175, 0.099, 0.308), "waymo", "validation"),
        # Numbers of a real evaluation, filed on the synthetic board to test its section.
        noisy.model_copy(update={"method": "videocups", "dataset": "synthetic", "command": None}),
        stand_in.model_copy(update={"dataset": "synthetic", "command": None}),
    ):
        submit_record(store, record)
    site = folder / "site"
    build_leaderboard(store, site)
    return Boards(store, site, stand_in, noisy)


def test_a_stand_in_is_listed_last_and_never_ranked(boards: Boards) -> None:
    database = LeaderboardDatabase.from_records(load_store(boards.store))
    try:
        assert database.boards() == [KITTI, WAYMO, SYNTHETIC]  # synthetic after the real data
        rows = database.board(KITTI)
        assert rows[-1].method == "cups-sort" and rows[-1].stand_in and rows[-1].rank is None
        assert rows[-1].stq == 1.0 > max(row.stq for row in rows[:-1])
        assert rows[-1].command == STAND_IN_COMMAND and rows[-1].model == "stand-in"
        ranked = rows[:-1]
        assert [row.rank for row in ranked] == list(range(1, len(ranked) + 1))
        assert [row.stq for row in ranked] == sorted((row.stq for row in ranked), reverse=True)
        assert not any(row.stand_in for row in ranked)
        assert [(row.method, row.rank) for row in database.board(WAYMO)] == [("cups-sort", 1)]

        summary = {row.method: row for row in database.summary()}
        assert set(summary) == {"tiny-method", "paper-method", "cups-sort"}  # no synthetic-only
        assert summary["cups-sort"].boards == 1 and summary["cups-sort"].mean_stq == 0.175
        assert set(summary["cups-sort"].cells) == {WAYMO}
        assert all(SYNTHETIC not in row.cells for row in summary.values())
        synthetic = database.board(SYNTHETIC)
        assert [(row.method, row.rank, row.stand_in) for row in synthetic] == [
            ("videocups", 1, False),
            ("cups-sort", None, True),
        ]
    finally:
        database.close()


def _board_html(index: str, anchor: str) -> str:
    """The HTML of one board's section."""
    match = re.search(rf'<section class="board" id="{anchor}">(.*?)</section>', index, re.S)
    assert match is not None, anchor
    return match.group(1)


def test_the_site_badges_stand_ins_and_has_a_synthetic_section(boards: Boards) -> None:
    index = (boards.site / "index.html").read_text(encoding="utf-8")
    kitti = _board_html(index, "kitti-step-val")
    rows = re.findall(r"<tr class=\"([^\"]*)\" data-method=\"([^\"]*)\">(.*?)</tr>", kitti)
    stand_ins = [row for row in rows if "stand-in" in row[0].split()]
    assert len(stand_ins) == 1 and stand_ins[0][1] == "cups-sort" and rows[-1] == stand_ins[0]
    cells = stand_ins[0][2]
    assert re.match(r'<td class="num" data-sort="" title="[^"]*never ranked[^"]*">–</td>', cells)
    assert 'class="badge stand-in"' in cells and STAND_IN_LABEL in cells
    assert "CUPS + SORT (weight-free stand-in)" in cells
    for _, method, html in rows[:-1]:
        assert "stand-in" not in html, method
    assert "stand-in" not in _board_html(index, "waymo-validation")  # the real CUPS + SORT
    assert kitti.count('class="point reproduced stand-in"') == 2  # grey marker in both plots

    summary = re.search(r'<table class="sortable" id="summary-table">(.*?)</table>', index, re.S)
    assert summary is not None
    assert "stand-in" not in summary.group(1) and "synthetic" not in summary.group(1)
    assert "100.00" not in summary.group(1)  # the stand-in's STQ is not the method's

    section = re.search(r'<section id="synthetic-data">(.*?)</section>\n</section>', index, re.S)
    assert section is not None and "<h2>Synthetic data</h2>" in section.group(1)
    assert 'id="synthetic-val"' in section.group(1)
    assert index.index('id="kitti-step-val"') < index.index('id="synthetic-data"')
    assert '<a href="#synthetic-data">Synthetic data</a>' in index

    page = (boards.site / "methods" / "cups-sort.html").read_text(encoding="utf-8")
    record = re.search(
        r'<section class="record reproduced" id="kitti-step-val">(.*?)</section>', page, re.S
    )
    assert record is not None and 'class="badge stand-in"' in record.group(1)
    assert f"<code>{STAND_IN_COMMAND}</code>" in record.group(1)
    reported = re.search(
        r'<section class="record reported" id="waymo-validation">(.*?)</section>', page, re.S
    )
    assert reported is not None and "stand-in" not in reported.group(1)
    css = (boards.site / "assets" / "style.css").read_text(encoding="utf-8")
    assert ".badge.stand-in" in css and "tr.stand-in" in css


def test_exports_flag_stand_ins(boards: Boards) -> None:
    document = json.loads((boards.site / "leaderboard.json").read_text(encoding="utf-8"))
    assert document["schema_version"] == 3
    by_board = {(b["dataset"], b["split"]): b for b in document["boards"]}
    assert [b["synthetic"] for b in document["boards"]] == [False, False, True]
    kitti = by_board["kitti-step", "val"]["rows"]
    assert kitti[-1]["stand_in"] is True and kitti[-1]["rank"] is None
    assert kitti[-1]["model"] == "stand-in" and kitti[-1]["command"] == STAND_IN_COMMAND
    assert all(row["stand_in"] is False for row in kitti[:-1])
    assert {row["method"]: row["mean_stq"] for row in document["summary"]}["cups-sort"] == 0.175

    markdown = (boards.site / "leaderboard.md").read_text(encoding="utf-8")
    real, synthetic = markdown.split("## Synthetic data")
    assert "## kitti-step val" in real and "### synthetic val" in synthetic
    assert (
        "| – | CUPS + SORT (weight-free stand-in) | 100.0 | 100.0 | 100.0 | "
        f"**reproduced** · *{STAND_IN_LABEL}* |"
    ) in real
    assert "| 1 | CUPS + SORT | 17.5 | 9.9 | 30.8 | *reported* (Table 9) |" in real
    assert real.count(STAND_IN_LABEL) == 1 and synthetic.count(STAND_IN_LABEL) == 2


def test_a_stand_in_never_replaces_the_real_record(boards: Boards, tmp_path: Path) -> None:
    store = tmp_path / "store"
    real = reported_record("cups-sort", "CUPS + SORT", (0.342, 0.377, 0.311))
    target = submit_record(store, real)
    before = target.read_bytes()
    with pytest.raises(VpsbenchError, match="stand-in's record never replaces it"):
        submit_record(store, boards.stand_in)
    assert target.read_bytes() == before
    again = boards.stand_in.model_copy(update={"dataset": "synthetic", "command": None})
    submit_record(store, again)
    submit_record(store, again)  # a stand-in may replace a stand-in (a rerun)
    assert len(load_store(store)) == 2


REPO = Path(__file__).resolve().parents[2]
BASELINES = ("u2seg-sort", "cups-sort", "cups-mono-sort", "depthg-videocutler")


def test_the_committed_board_has_the_synthetic_rows_with_stand_ins_flagged(tmp_path: Path) -> None:
    stored = load_store(REPO / "submissions")
    synthetic = {s.record.method: s.record for s in stored if s.record.dataset == "synthetic"}
    assert {*BASELINES, "videocups-pseudo-labels"} <= set(synthetic)
    for method, record in synthetic.items():
        assert record.provenance == "reproduced" and record.model is not None, method
        assert record.command is not None, method
        words = shlex.split(record.command)
        assert words[:2] == ["vpsbench", "run-method"] and method.startswith(words[2]), method
        loads_weights = any(w.partition("=")[0] in WEIGHT_SETTINGS for w in words)
        assert record.is_stand_in == (method in BASELINES and not loads_weights), method
    assert synthetic["videocups-pseudo-labels"].model == "training-free"

    site = tmp_path / "site"
    build_leaderboard(REPO / "submissions", site)
    for name in ("index.html", "leaderboard.md", "leaderboard.json", ".vpsbench-site.json"):
        committed = (REPO / "leaderboard" / name).read_bytes()
        assert committed == (site / name).read_bytes(), f"rebuild leaderboard/{name}"
