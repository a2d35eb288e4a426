"""Build the static leaderboard from a store: pages, assets, record copies and exports.

The same records always give the same bytes: no build time is written, records are loaded in
path order and every number is formatted explicitly. The site is built in a temporary folder
next to ``--out`` and swapped in by one atomic rename, so a killed build leaves the previous site
whole; a lock keeps two builds of the same folder apart. A manifest lists what the build wrote:
the next build drops only those files (stale pages); every other file in the folder is the user's
and is kept, and a user's file where the build would write is an error, never overwritten.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from vpsbench.errors import InputError, VpsbenchError
from vpsbench.formats.atomic import atomic_write_text
from vpsbench.leaderboard.assets import SORT_JS, STYLE_CSS
from vpsbench.leaderboard.database import LeaderboardDatabase
from vpsbench.leaderboard.exports import leaderboard_json, leaderboard_markdown
from vpsbench.leaderboard.locking import exclusive_lock
from vpsbench.leaderboard.site import (
    FOOTER_MARKER,
    method_page,
    record_file,
    render_index,
    render_method_page,
)
from vpsbench.leaderboard.store import StoredRecord, load_store
from vpsbench.records import read_record, record_to_json

#: Folders whose generated contents the build owns.
GENERATED_FOLDERS = ("methods", "records", "assets")
#: The build's manifest (hidden): the files it wrote, which the next build may replace or drop.
MANIFEST_NAME = ".vpsbench-site.json"
MANIFEST_GENERATOR = "vpsbench leaderboard build"
#: Top-level files of a site built before manifests existed.
_LEGACY_TOP = (
    "index.html",
    "leaderboard.json",
    "leaderboard.md",
    "assets/sort.js",
    "assets/style.css",
)
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


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


def manifest_text(files: Sequence[str]) -> str:
    """The manifest of a build: the sorted site paths it wrote (deterministic bytes)."""
    document = {"generator": MANIFEST_GENERATOR, "files": sorted(files)}
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def _safe_relative(value: object) -> bool:
    """Whether a manifest entry is a plain relative POSIX path inside the site."""
    if not isinstance(value, str) or not value or value.startswith("/") or "\\" in value:
        return False
    return all(part not in ("", ".", "..") for part in value.split("/"))


def _manifest_files(out: Path) -> set[str] | None:
    """The files the previous build listed in its manifest; None when there is no manifest."""
    manifest = out / MANIFEST_NAME
    if not manifest.exists() and not manifest.is_symlink():
        return None
    problem = "not a manifest that `vpsbench leaderboard build` wrote; not touching the folder"
    if manifest.is_symlink() or not manifest.is_file():
        raise InputError(manifest, problem)
    try:
        document = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        raise InputError(manifest, problem) from None
    if not isinstance(document, dict) or document.get("generator") != MANIFEST_GENERATOR:
        raise InputError(manifest, problem)
    files = document.get("files")
    if not isinstance(files, list):
        raise InputError(manifest, problem)
    if not all(_safe_relative(entry) for entry in files):
        raise InputError(manifest, f"{problem} (an entry is not a path inside the site)")
    return set(files)


def _generated_by_legacy_build(out: Path, relative: str) -> bool:
    """Whether a file of a manifest-less site is one that an older build wrote."""
    path = out / relative
    if path.is_symlink() or not path.is_file():
        return False
    if relative in _LEGACY_TOP:
        return True
    parts = relative.split("/")
    if len(parts) == 2 and parts[0] == "methods" and parts[1].endswith(".html"):
        with contextlib.suppress(OSError, UnicodeDecodeError):
            return FOOTER_MARKER in path.read_text(encoding="utf-8")
        return False
    if len(parts) == 3 and parts[0] == "records" and parts[2].endswith(".json"):
        try:
            record = read_record(path)
        except VpsbenchError:
            return False
        return f"{record.method}/{record.dataset}-{record.split}.json" == "/".join(parts[1:])
    return False


def _owned_files(out: Path, present: Sequence[str]) -> set[str]:
    """The files of ``out`` that an earlier build wrote: the manifest's, else recognised ones."""
    listed = _manifest_files(out)
    if listed is not None:
        return listed
    index = out / "index.html"
    try:
        legacy = index.is_file() and FOOTER_MARKER in index.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        legacy = False
    if not legacy:
        return set()
    return {relative for relative in present if _generated_by_legacy_build(out, relative)}


def _entries(out: Path) -> tuple[list[str], list[str]]:
    """Every file (anything not a folder, symlinks included) and folder under ``out``."""
    files: list[str] = []
    folders: list[str] = []
    for root, dirs, names in os.walk(out):
        base = Path(root).relative_to(out)
        for name in dirs:
            path = Path(root) / name
            (files if path.is_symlink() else folders).append((base / name).as_posix())
        files.extend((base / name).as_posix() for name in names)
    return sorted(files), sorted(folders)


def _check_conflicts(out: Path, user_files: set[str], folders: set[str], site: set[str]) -> None:
    """Refuse to build where a file of the user's lies at (or above) a path the build writes."""
    for relative in sorted(site):
        parts = relative.split("/")
        above = ["/".join(parts[:depth]) for depth in range(1, len(parts))]
        clash = next((p for p in above if p in user_files), None)
        if relative in user_files or relative in folders:
            clash = relative
        if clash is not None:
            raise InputError(
                out / clash,
                "not written by `vpsbench leaderboard build`; not overwritten (move it away or "
                "choose another --out)",
            )


def _copy_user_entries(out: Path, new: Path, user_files: list[str], folders: list[str]) -> None:
    """Carry the user's files (and folders outside the generated ones) into the new site."""
    for relative in folders:
        if relative.split("/")[0] not in GENERATED_FOLDERS:
            (new / relative).mkdir(parents=True, exist_ok=True)
    for relative in user_files:
        source, target = out / relative, new / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            os.symlink(os.readlink(source), target)
        elif source.is_file():
            shutil.copy2(source, target)
        else:
            raise InputError(source, "not a regular file, folder or link; cannot keep it")


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2``); False where that is not available."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    result = renameat2(
        _AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE
    )
    return bool(result == 0)


def _swap_in(new: Path, out: Path) -> None:
    """Put the built folder ``new`` at ``out``; the previous site stays whole until then."""
    if not out.exists():
        os.rename(new, out)
    elif _exchange(new, out):
        shutil.rmtree(new, ignore_errors=True)  # holds the previous site now
    else:  # no atomic exchange: two renames, the previous site kept aside until the second
        old = new.with_name(new.name.replace("vpsbench-new-", "vpsbench-old-"))
        os.rename(out, old)
        try:
            os.rename(new, out)
        except OSError:
            os.rename(old, out)
            raise
        shutil.rmtree(old, ignore_errors=True)
    with contextlib.suppress(OSError):
        fd = os.open(out.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _remove_leftovers(parent: Path, name: str) -> None:
    """Delete the temporary folders of builds of ``name`` that were killed (under the lock)."""
    pattern = re.compile(rf"^\.{re.escape(name)}\.vpsbench-(?:new|old)-[a-z0-9_]+$")
    for entry in parent.iterdir():
        if pattern.fullmatch(entry.name) and entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)


def check_site_folder(out: Path, store: Path | None = None) -> Path:
    """The absolute site folder, or one line on why ``--out`` cannot be built into."""
    target = out.resolve()
    if target.parent == target:
        raise InputError(out, "--out: the site folder cannot be the file system root")
    for folder in (target, *target.parents):
        if folder.exists() and not folder.is_dir():
            where = "" if folder == target else f" ({folder} is a file)"
            raise InputError(out, f"--out: not a folder{where}")
    cwd = Path.cwd().resolve()
    if cwd == target or cwd.is_relative_to(target):
        raise InputError(
            out, "--out: the site folder is replaced as a whole; it cannot hold the current folder"
        )
    if store is not None and store.resolve().is_relative_to(target):
        raise InputError(out, f"--out: the site folder must not hold the store {store}")
    if store is not None and target.is_relative_to(store.resolve()):
        raise InputError(out, f"--out: the site folder must not lie inside the store {store}")
    return target


def write_site(records: Sequence[StoredRecord], out: Path, store: Path | None = None) -> list[Path]:
    """Render the site of ``records`` and swap it in at ``out`` (see the module's docstring)."""
    target = check_site_folder(out, store)
    database = LeaderboardDatabase.from_records(records)
    try:
        files = render_site(database)
    finally:
        database.close()
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(parent, f"--out: cannot create the folder: {error.strerror}") from None
    with exclusive_lock(parent / f".{target.name}.vpsbench-lock", f"the site folder {out}"):
        _remove_leftovers(parent, target.name)
        present, folders = _entries(target) if target.is_dir() else ([], [])
        owned = _owned_files(target, present) | {MANIFEST_NAME}
        user_files = [relative for relative in present if relative not in owned]
        _check_conflicts(target, set(user_files), set(folders), {*files, MANIFEST_NAME})
        new = Path(tempfile.mkdtemp(dir=parent, prefix=f".{target.name}.vpsbench-new-"))
        try:
            for relative, text in sorted(files.items()):
                atomic_write_text(new / relative, text)
            atomic_write_text(new / MANIFEST_NAME, manifest_text(list(files)))
            _copy_user_entries(target, new, user_files, folders)
            os.chmod(new, target.stat().st_mode & 0o7777 if target.is_dir() else 0o777 & ~_umask())
            _swap_in(new, target)
        except OSError as error:
            shutil.rmtree(new, ignore_errors=True)
            raise InputError(out, f"--out: cannot write the site: {error.strerror}") from None
        except BaseException:
            shutil.rmtree(new, ignore_errors=True)
            raise
    return [out / relative for relative in sorted(files)]


def _umask() -> int:
    """The process umask (a new site folder gets the usual permissions, not mkdtemp's 0700)."""
    current = os.umask(0o022)
    os.umask(current)
    return current


def build_leaderboard(store: Path, out: Path) -> list[Path]:
    """Load and check every record of ``store`` and swap the built site in at ``out``."""
    check_site_folder(out, store)
    return write_site(load_store(store), out, store)
