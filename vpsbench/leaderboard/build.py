"""Build the static leaderboard from a store: pages, assets, record copies and exports.

The same records always give the same bytes: no build time is written, records are loaded in
path order and every number is formatted explicitly. Stale generated files are removed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from vpsbench.formats.atomic import atomic_write_text
from vpsbench.leaderboard.assets import SORT_JS, STYLE_CSS
from vpsbench.leaderboard.database import LeaderboardDatabase
from vpsbench.leaderboard.exports import leaderboard_json, leaderboard_markdown
from vpsbench.leaderboard.site import method_page, record_file, render_index, render_method_page
from vpsbench.leaderboard.store import StoredRecord, load_store
from vpsbench.records import record_to_json

#: Folders whose contents the build owns (files there that it did not write are removed).
GENERATED_FOLDERS = ("methods", "records", "assets")


def render_site(database: LeaderboardDatabase) -> dict[str, str]:
    """Every file of the site: relative POSIX path → text."""
    files = {
        "index.html": render_index(database),
        "leaderboard.json": leaderboard_json(database),
        "leaderboard.md": leaderboard_markdown(database),
        "assets/sort.js": SORT_JS,
        "assets/style.css": STYLE_CSS,
    }
    for entry in database.methods():
        files[method_page(entry.method)] = render_method_page(
            database, entry.method, entry.method_name
        )
    for path, record in database.all_records():
        files[record_file(path)] = record_to_json(record)
    return files


def _remove_stale(out: Path, keep: set[str]) -> None:
    """Delete files in the generated folders that this build did not produce."""
    for folder in GENERATED_FOLDERS:
        base = out / folder
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*"), reverse=True):
            relative = path.relative_to(out).as_posix()
            if path.is_file() and relative not in keep:
                path.unlink()
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()


def write_site(records: Sequence[StoredRecord], out: Path) -> list[Path]:
    """Render the site of ``records`` into ``out`` (atomically, file by file)."""
    database = LeaderboardDatabase.from_records(records)
    try:
        files = render_site(database)
    finally:
        database.close()
    written = []
    for relative, text in sorted(files.items()):
        target = out / relative
        atomic_write_text(target, text)
        written.append(target)
    _remove_stale(out, set(files))
    return written


def build_leaderboard(store: Path, out: Path) -> list[Path]:
    """Load and check every record of ``store`` and write the site to ``out``."""
    return write_site(load_store(store), out)
