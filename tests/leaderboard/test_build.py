"""The SQLite query layer and the static site built from it: rows, escaping, determinism."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from tests.leaderboard.conftest import StoreLayout
from tests.leaderboard.fixtures import XSS_NAME
from vpsbench.leaderboard.build import build_leaderboard
from vpsbench.leaderboard.database import BoardKey, LeaderboardDatabase
from vpsbench.leaderboard.exports import markdown_text
from vpsbench.leaderboard.store import load_store
from vpsbench.records import read_record

KITTI = BoardKey("kitti-step", "val")


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_database_rows(store_layout: StoreLayout) -> None:
    stored = load_store(store_layout.store)
    database = LeaderboardDatabase.from_records(stored)
    reproduced = read_record(store_layout.store / "tiny-method" / "kitti-step-val.json")
    assert database.boards() == [KITTI]
    rows = database.board(KITTI)
    assert [(r.rank, r.method, r.provenance) for r in rows] == [
        (1, "tiny-method", "reproduced"),
        (2, "paper-method", "reported"),
        (3, "xss-probe", "reported"),
    ]
    assert rows[0].stq == reproduced.metrics.stq and rows[0].vpq == reproduced.metrics.vpq
    assert rows[1].stq == 0.373 and rows[1].precision == 0.001
    assert rows[2].method_name == XSS_NAME
    assert rows[1].citation_locator == "Table 9"

    classes = database.class_values(rows[0].record_id)
    assert {c.class_name: c.iou for c in classes} == reproduced.metrics.iou_per_class
    assert [c.class_name for c in classes] == sorted(reproduced.metrics.iou_per_class)
    sequences = database.sequence_values(rows[0].record_id)
    assert [(s.sequence, s.frames, s.tubes, s.aq) for s in sequences] == [
        (s.sequence, s.frames, s.tubes, s.aq) for s in reproduced.metrics.per_sequence
    ]
    assert database.class_values(rows[1].record_id) == []
    assert database.sequence_values(rows[1].record_id) == []

    summary = database.summary()
    assert [(s.method, s.boards) for s in summary] == [
        ("tiny-method", 1),
        ("paper-method", 1),
        ("xss-probe", 1),
    ]
    assert summary[0].cells[KITTI].stq == reproduced.metrics.stq
    assert [m.method for m in database.methods()] == ["paper-method", "tiny-method", "xss-probe"]
    assert [e.path for e in database.method_records("tiny-method")] == [
        "tiny-method/kitti-step-val.json"
    ]
    database.close()


def test_site_files(built_site: Path) -> None:
    files = sorted(_files(built_site))
    assert files == [
        ".vpsbench-site.json",
        "assets/sort.js",
        "assets/style.css",
        "index.html",
        "leaderboard.json",
        "leaderboard.md",
        "methods/paper-method.html",
        "methods/tiny-method.html",
        "methods/xss-probe.html",
        "records/paper-method/kitti-step-val.json",
        "records/tiny-method/kitti-step-val.json",
        "records/xss-probe/kitti-step-val.json",
    ]


def test_pages_have_tables_badges_plots_and_no_network(built_site: Path) -> None:
    index = (built_site / "index.html").read_text(encoding="utf-8")
    assert index.count('<table class="sortable"') == 2  # summary + one board
    assert index.count("<svg") == 2  # STQ vs AQ and STQ vs SQ
    assert 'class="badge reproduced"' in index and 'class="badge reported"' in index
    assert '<tr class="reported"' in index and '<tr class="reproduced"' in index
    assert "Content-Security-Policy" in index
    every_page = "".join(p.read_text(encoding="utf-8") for p in built_site.rglob("*.html"))
    sources = re.findall(r'(?:src|href)="([^"]*)"', every_page)
    remote = [s for s in sources if s.startswith(("http:", "https:", "//"))]
    assert sorted(remote) == ["https://example.org/?q=1&amp;r=2", "https://example.org/tiny"]
    outgoing = re.findall(
        r'<a href="(https?:[^"]*)" rel="nofollow noopener noreferrer">', every_page
    )
    assert sorted(outgoing) == sorted(remote)
    assert "innerHTML" not in (built_site / "assets" / "sort.js").read_text(encoding="utf-8")

    tiny = (built_site / "methods" / "tiny-method.html").read_text(encoding="utf-8")
    assert "Per-class IoU" in tiny and "Per sequence" in tiny and "bars" in tiny
    assert 'id="sequences-kitti-step-val"' in tiny and "0002" in tiny and "0006" in tiny
    paper = (built_site / "methods" / "paper-method.html").read_text(encoding="utf-8")
    assert "Per-class IoU" not in paper and "A. Author: A Paper, Table 9" in paper


def test_markup_in_records_is_inert_everywhere(built_site: Path) -> None:
    escaped = "&lt;img src=x onerror=alert(1)&gt;"
    for path in built_site.rglob("*.html"):
        text = path.read_text(encoding="utf-8")
        assert "<img" not in text, path
        assert re.findall(r"<script[^>]*>", text) == [
            f'<script src="{"../" if path.parent.name == "methods" else ""}assets/sort.js" defer>'
        ]
    index = (built_site / "index.html").read_text(encoding="utf-8")
    assert index.count(escaped) >= 3  # table cell, sort key, both plots
    markdown = (built_site / "leaderboard.md").read_text(encoding="utf-8")
    assert "<img" not in markdown and markdown_text(XSS_NAME) in markdown
    document = json.loads((built_site / "leaderboard.json").read_text(encoding="utf-8"))
    assert document["boards"][0]["rows"][2]["method_name"] == XSS_NAME


def test_exports(built_site: Path, store_layout: StoreLayout) -> None:
    document = json.loads((built_site / "leaderboard.json").read_text(encoding="utf-8"))
    rows = document["boards"][0]["rows"]
    assert [r["method"] for r in rows] == ["tiny-method", "paper-method", "xss-probe"]
    assert (
        rows[1]["stq"] == 0.373 and rows[1]["record"] == "records/paper-method/kitti-step-val.json"
    )
    assert (built_site / rows[0]["record"]).read_bytes() == (
        store_layout.store / "tiny-method" / "kitti-step-val.json"
    ).read_bytes()
    markdown = (built_site / "leaderboard.md").read_text(encoding="utf-8")
    assert "| 2 | Paper Method | 37.3 | 43.6 | 32.0 | *reported* (Table 9) |" in markdown
    assert "**reproduced**" in markdown


def test_build_is_deterministic_and_removes_stale_pages(
    store_layout: StoreLayout, built_site: Path, tmp_path: Path
) -> None:
    again = tmp_path / "again"
    (again / "methods").mkdir(parents=True)
    (again / "notes.txt").write_text("kept", encoding="utf-8")
    build_leaderboard(store_layout.store, again)
    assert (again / "notes.txt").read_text(encoding="utf-8") == "kept"
    (again / "notes.txt").unlink()
    assert _files(again) == _files(built_site)

    # a page the previous build wrote (it is in its manifest) goes once its method is gone
    store = Path(shutil.copytree(store_layout.store, tmp_path / "store"))
    shutil.rmtree(store / "xss-probe")
    build_leaderboard(store, again)
    assert not (again / "methods" / "xss-probe.html").exists()
    assert not (again / "records" / "xss-probe").exists()
    assert (again / "methods" / "paper-method.html").is_file()


def test_markdown_escaping() -> None:
    assert markdown_text("a|b") == "a\\|b"
    assert markdown_text("<b>x</b> & *y*") == "&lt;b&gt;x&lt;/b&gt; &amp; \\*y\\*"
    assert markdown_text("[link](javascript:alert(1))") == "\\[link\\](javascript:alert(1))"
