"""A first run of the leaderboard commands: the store found (or a hint), missing folders refused,
the supervised upper bound shown as an unranked reference, one decimal everywhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.cli_runner import run_cli
from vpsbench.leaderboard.build import build_leaderboard
from vpsbench.leaderboard.database import LeaderboardDatabase
from vpsbench.leaderboard.store import STORE_ENV, load_store

REPO = Path(__file__).resolve().parents[2]
STORE = REPO / "submissions"


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder outside the checkout, with no store named anywhere."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.delenv(STORE_ENV, raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    return folder


@pytest.mark.parametrize("command", [["show"], ["build", "--out", "site"]])
def test_no_store_is_one_line_with_a_hint(
    elsewhere: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    code, _, err = run_cli(["leaderboard", *command], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: submissions: no submissions store here: pass --store DIR")
    assert f"${STORE_ENV}" in lines[0] and str(STORE) in lines[0]
    assert not (elsewhere / "site").exists()


def test_store_by_option_or_environment_outside_the_checkout(
    elsewhere: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, by_option, err = run_cli(["leaderboard", "show", "--store", str(STORE)], capsys)
    assert code == 0, err
    monkeypatch.setenv(STORE_ENV, str(STORE))
    code, by_env, err = run_cli(["leaderboard", "show"], capsys)
    assert code == 0, err
    assert by_option == by_env and "VideoCUPS" in by_env
    code, _, err = run_cli(["leaderboard", "build", "--out", "site"], capsys)
    assert code == 0, err
    assert (elsewhere / "site" / "index.html").is_file()


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_verify_on_a_missing_prediction_folder_fails(
    elsewhere: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    pred_root = elsewhere / "preds"
    if kind == "file":
        pred_root.write_text("x")
    args = ["leaderboard", "verify", "--pred-root", str(pred_root), "--store", str(STORE)]
    code, _, err = run_cli(args, capsys)
    assert code == 2
    problem = "no such folder" if kind == "missing" else "is not a folder"
    assert err.strip().splitlines() == [f"error: {pred_root}: --pred-root: {problem}"]


def test_supervised_upper_bound_is_an_unranked_reference() -> None:
    database = LeaderboardDatabase.from_records(load_store(STORE))
    try:
        boards_with_reference = 0
        for key in database.boards():
            rows = database.board(key)
            ranked = [row for row in rows if row.rank is not None]
            # ranks are the standard competition ranks of the ranked rows' STQ, best first
            for row in ranked:
                assert row.rank == 1 + sum(other.stq > row.stq for other in ranked)
            for row in rows:
                assert row.reference == (row.method == "supervised")
                if row.reference:
                    boards_with_reference += 1
                    assert row.rank is None and row is rows[-1]
        assert boards_with_reference == 4  # the four boards of the VideoCUPS paper
        assert "supervised" not in {row.method for row in database.summary()}
    finally:
        database.close()


def test_board_numbers_have_one_decimal_and_the_reference_is_marked(tmp_path: Path) -> None:
    site = tmp_path / "site"
    build_leaderboard(STORE, site)
    index = (site / "index.html").read_text(encoding="utf-8")
    cells = re.findall(r'<td class="num[^"]*" data-sort="([^"]*)"[^>]*>([^<]*)</td>', index)
    floats = [(key, text) for key, text in cells if "." in key]
    assert floats
    for key, text in floats:
        assert text == f"{100 * float(key):.1f}", (key, text)
    supervised = re.findall(r'<tr class="([^"]*)" data-method="supervised">(.*?)</tr>', index)
    assert len(supervised) == 4
    for classes, row in supervised:
        assert "reference" in classes.split()
        assert "reference: supervised upper bound" in row
        assert row.startswith('<td class="num" data-sort="" title=')
    markdown = (site / "leaderboard.md").read_text(encoding="utf-8")
    numbers = re.findall(r"\| (\d+\.\d+) ", markdown)
    assert numbers and all(re.fullmatch(r"\d+\.\d", n) for n in numbers)
    assert markdown.count("| – | Supervised |") == 4
