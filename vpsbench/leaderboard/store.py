"""The submissions store: ``<store>/<method>/<dataset>-<split>.json``, one record per result."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from vpsbench.errors import InputError, VpsbenchError
from vpsbench.leaderboard.consistency import record_problems
from vpsbench.records import (
    SLUG_PATTERN,
    ResultRecord,
    read_record,
    validation_summary,
    write_record,
)

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
    """Validate a record and file it atomically at its place in the store.

    A weight-free stand-in's record never replaces a record of the method itself (same method,
    dataset and split): the board would lose the real number and show the stand-in instead.
    """
    check_for_submission(record)
    target = record_path(store, record)
    if record.is_stand_in and target.is_file():
        existing = read_record(target)
        if not existing.is_stand_in:
            raise VpsbenchError(
                f"record rejected: {relative_record_path(record)} holds a {existing.provenance} "
                "record of the method itself; a weight-free stand-in's record never replaces it"
            )
    write_record(target, record)
    return target


def complete_origin(
    record: ResultRecord,
    model: str | None = None,
    command: str | None = None,
    notes: str | None = None,
) -> ResultRecord:
    """The record with ``model``, ``command`` and ``notes`` set where it has none (never replaced).

    For records that ``vpsbench evaluate --save-record`` wrote about predictions it did not make:
    the submitter states what made them and how to regenerate them; the result is validated anew.
    """
    given = {"model": model, "command": command, "notes": notes}
    for field, value in given.items():
        stated = getattr(record, field)
        if value is not None and stated is not None and stated != value:
            raise VpsbenchError(f"the record already states {field} {stated!r}; not replaced")
    document = record.model_dump(mode="json")
    document |= {field: value for field, value in given.items() if value is not None}
    try:
        return ResultRecord.model_validate(document, strict=False)
    except ValidationError as error:
        raise VpsbenchError(f"--{validation_summary(error)}") from None


def submit_file(
    store: Path,
    source: Path,
    *,
    model: str | None = None,
    command: str | None = None,
    notes: str | None = None,
) -> Path:
    """Read, validate and file a record file (completing its origin, see above); errors name it."""
    record = read_record(source)
    try:
        if model is not None or command is not None or notes is not None:
            record = complete_origin(record, model, command, notes)
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
