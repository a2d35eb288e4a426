"""The submissions store: ``<store>/<method>/<dataset>-<split>.json``, one record per result."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from vpsbench.errors import InputError, VpsbenchError
from vpsbench.leaderboard.consistency import record_problems
from vpsbench.leaderboard.locking import exclusive_lock
from vpsbench.records import (
    SLUG_PATTERN,
    ResultRecord,
    read_record,
    record_to_json,
    validation_summary,
    write_record,
)

DEFAULT_STORE = Path("submissions")
#: Names the store when ``--store`` is not given (before ``./submissions``).
STORE_ENV = "VPSBENCH_STORE"
#: The lock file that serialises writes to a store (hidden: never read as a record).
LOCK_NAME = ".vpsbench-store.lock"


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


def chosen_store(store: Path | None) -> Path:
    """The store named by ``--store``, else ``$VPSBENCH_STORE``, else ``./submissions``."""
    if store is not None:
        return store
    explicit = os.environ.get(STORE_ENV)
    return Path(explicit).expanduser() if explicit else DEFAULT_STORE


def _bundled_store() -> Path | None:
    """The ``submissions/`` of the source checkout vpsbench runs from (editable installs)."""
    folder = Path(__file__).resolve().parents[2] / "submissions"
    return folder if folder.is_dir() else None


def existing_store(store: Path | None) -> Path:
    """The store to read (see :func:`chosen_store`); if it is missing, say how to name one."""
    path = chosen_store(store)
    if path.is_dir():
        return path
    if path.exists():
        raise InputError(path, "submissions store not a folder")
    how = "pass --store DIR" if store is None else "check --store"
    bundled = _bundled_store()
    hint = f"; vpsbench's own records are at {bundled}" if bundled is not None else ""
    raise InputError(
        path,
        f"no submissions store here: {how} (a folder of <method>/<dataset>-<split>.json "
        f"records) or set ${STORE_ENV}{hint}",
    )


def check_store_folder(store: Path) -> None:
    """Refuse a store path that is not a folder (or lies under a file) before any work."""
    for folder in (store, *store.parents):
        if folder.exists() or folder.is_symlink():
            if not folder.is_dir():
                problem = "not a folder" if folder == store else f"{folder} is not a folder"
                raise InputError(store, f"--store: {problem}")
            return


def _check_replacement(record: ResultRecord, existing: ResultRecord, replace: bool) -> None:
    """Refuse to overwrite a filed record unless asked to; some records are never replaced.

    A weight-free stand-in's record never replaces a record of the method itself (the board
    would show the stand-in instead of the real number), and a reproduced record never replaces
    a reported one under the same slug (the paper's number and its citation would be lost).
    """
    where = relative_record_path(record)
    if record.is_stand_in and not existing.is_stand_in:
        raise VpsbenchError(
            f"record rejected: {where} holds a {existing.provenance} "
            "record of the method itself; a weight-free stand-in's record never replaces it"
        )
    if existing.provenance == "reported" and record.provenance == "reproduced":
        raise VpsbenchError(
            f"record rejected: {where} holds the reported (published) record; a reproduced "
            "record never replaces it: file it under another method id"
        )
    if not replace:
        raise VpsbenchError(
            f"record rejected: {where} already exists in the store; pass --replace to overwrite it"
        )


def submit_record(store: Path, record: ResultRecord, replace: bool = False) -> Path:
    """Validate a record and file it atomically at its place in the store.

    An existing different record is replaced only with ``replace`` (never a reported one by a
    reproduced one, never the method's own by a stand-in's); filing the same record again is a
    no-op. The store is locked while filing, so concurrent submissions never silently race.
    """
    check_for_submission(record)
    check_store_folder(store)
    target = record_path(store, record)
    try:
        store.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(store, f"--store: cannot create the folder: {error.strerror}") from None
    with exclusive_lock(store / LOCK_NAME, f"the submissions store {store}"):
        if target.exists() or target.is_symlink():
            if target.is_symlink() or not target.is_file():
                raise InputError(target, "a record file must be a regular file; not replaced")
            try:
                existing: ResultRecord | None = read_record(target)
            except InputError as error:
                if not replace:
                    problem = f"{error.problem}; pass --replace to overwrite it"
                    raise InputError(target, problem) from None
                existing = None  # unreadable: only an explicit --replace overwrites it
            if existing is not None:
                if record_to_json(existing) == record_to_json(record):
                    return target
                _check_replacement(record, existing, replace)
        try:
            write_record(target, record)
        except OSError as error:
            raise InputError(target, f"cannot write the record: {error.strerror}") from None
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
    replace: bool = False,
) -> Path:
    """Read, validate and file a record file (completing its origin, see above); errors name it."""
    record = read_record(source)
    try:
        if model is not None or command is not None or notes is not None:
            record = complete_origin(record, model, command, notes)
        return submit_record(store, record, replace)
    except InputError:
        raise
    except VpsbenchError as error:
        raise InputError(source, str(error)) from None


def record_files(store: Path) -> list[Path]:
    """The record files of a store, sorted (hidden and temporary files are skipped)."""
    if not store.is_dir():
        problem = "not a folder" if store.exists() else "does not exist"
        raise InputError(store, f"submissions store {problem}")
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
