"""The submissions store: ``<store>/<method>/<dataset>-<split>.json``, one record per result."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from vpsbench.errors import InputError, VpsbenchError
from vpsbench.leaderboard.consistency import record_problems
from vpsbench.records import SLUG_PATTERN, ResultRecord, read_record, write_record

DEFAULT_STORE = Path("submissions")


@dataclass(frozen=True)
class StoredRecord:
    """A record and where it lives, relative to the store (``method/dataset-split.json``)."""

    record: ResultRecord
    relative_path: str


def _safe_part(value: str, what: str) -> str:
    """Refuse anything but a slug as a path component (no ``/``, ``..``, dot files)."""
    if not re.fullmatch(SLUG_PATTERN, value):
        raise VpsbenchError(f"{what} {value!r} is not a slug (lower-case words joined by -_.)")
    return value


def relative_record_path(record: ResultRecord) -> str:
    """Where a record belongs inside the store, as a POSIX path."""
    method = _safe_part(record.method, "method")
    dataset = _safe_part(record.dataset, "dataset")
    split = _safe_part(record.split, "split")
    return f"{method}/{dataset}-{split}.json"


def record_path(store: Path, record: ResultRecord) -> Path:
    """The record's file in ``store``; an error if it would lie outside the store."""
    base = store.resolve()
    target = (base / relative_record_path(record)).resolve()
    if not target.is_relative_to(base) or target.parent.parent != base:
        raise VpsbenchError(f"record path {target} would escape the store {base}")
    return target


def check_for_submission(record: ResultRecord) -> None:
    """Raise one line naming the first inconsistency (and how many more) of a record."""
    problems = record_problems(record)
    if problems:
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise VpsbenchError(f"record rejected: {problems[0]}{more}")


def submit_record(store: Path, record: ResultRecord) -> Path:
    """Validate a record and file it atomically at its place in the store."""
    check_for_submission(record)
    target = record_path(store, record)
    write_record(target, record)
    return target


def submit_file(store: Path, source: Path) -> Path:
    """Read, validate and file a record file; errors name the file."""
    record = read_record(source)
    try:
        return submit_record(store, record)
    except InputError:
        raise
    except VpsbenchError as error:
        raise InputError(source, str(error)) from None


def record_files(store: Path) -> list[Path]:
    """The record files of a store, sorted (hidden and temporary files are skipped)."""
    if not store.is_dir():
        raise InputError(store, "submissions store does not exist")
    return sorted(
        path
        for path in store.glob("*/*.json")
        if not path.name.startswith(".") and not path.parent.name.startswith(".")
    )


def load_store(store: Path, check: bool = True) -> list[StoredRecord]:
    """Every record, validated and at its path; ``check`` also demands consistent numbers."""
    stored: list[StoredRecord] = []
    base = store.resolve()
    for path in record_files(store):
        if path.is_symlink():
            raise InputError(path, "record files must not be symbolic links")
        record = read_record(path)
        relative = relative_record_path(record)
        if path.resolve() != base / relative:
            raise InputError(path, f"record belongs at {relative} (method, dataset and split)")
        if check:
            problems = record_problems(record)
            if problems:
                raise InputError(path, problems[0])
        stored.append(StoredRecord(record, relative))
    return stored
