"""Re-evaluate ``reproduced`` records from their predictions and flag what does not reproduce.

Predictions of a record are looked up at ``<pred-root>/<method>/<dataset>-<split>/``; the dataset
root is resolved as the evaluator does (config file, then ``$VPSBENCH_DATA``). A number that moves
by more than 1e-9, a different prediction digest or a different mapping is a failure; records
without predictions (and reported ones) are listed as not checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vpsbench.datasets import open_dataset
from vpsbench.errors import VpsbenchError
from vpsbench.evaluation import EvaluationJob, EvaluationSettings, evaluate
from vpsbench.leaderboard.consistency import record_problems
from vpsbench.leaderboard.store import StoredRecord
from vpsbench.matching import MatchingMode
from vpsbench.predictions import PredictionSource
from vpsbench.records import ResultRecord, metric_values, record_from_results
from vpsbench.results import result_to_dict

REPRODUCTION_TOLERANCE = 1e-9

Status = Literal["ok", "failed", "not checked"]


@dataclass(frozen=True)
class VerifyOutcome:
    """What verifying one record found."""

    path: str
    status: Status
    problems: tuple[str, ...] = ()
    reason: str = ""


def predictions_folder(pred_root: Path, record: ResultRecord) -> Path:
    """Where the predictions of a record are expected (record ids are slugs: no escape)."""
    return pred_root / record.method / f"{record.dataset}-{record.split}"


def _settings(record: ResultRecord) -> EvaluationSettings:
    """The evaluation settings a record states."""
    protocol = record.protocol
    try:
        matching = MatchingMode(protocol.matching)
    except ValueError:
        raise VpsbenchError(f"unknown matching mode {protocol.matching!r}") from None
    metrics = ["stq"]
    if record.metrics.vpq is not None:
        metrics.append("vpq")
    if record.metrics.pq is not None:
        metrics.append("pq")
    return EvaluationSettings(
        matching=matching,
        pseudo_things=tuple(protocol.pseudo_things) if protocol.pseudo_things is not None else None,
        metrics=tuple(metrics),
        vpq_windows=tuple(protocol.vpq_windows or (1, 2, 3, 4)),
        count_void_column=True
        if protocol.count_void_column is None
        else protocol.count_void_column,
    )


def reevaluate(record: ResultRecord, predictions: Path, workers: int = 1) -> ResultRecord:
    """Evaluate a record's predictions again under the record's protocol."""
    files = record.predictions
    dataset = open_dataset(record.dataset, None, record.protocol.options)
    source = PredictionSource.open(
        predictions,
        files.format if files and files.format else "auto",
        files.divisor if files and files.divisor else 1000,
        len(record.mapping) or None,
    )
    sequences = [row.sequence for row in record.metrics.per_sequence] or None
    job = EvaluationJob(dataset, record.split, source)
    result = evaluate(job, _settings(record), sequences=sequences, workers=workers)
    return record_from_results(
        result_to_dict(result), record.method, record.method_version, timestamp=record.timestamp
    )


def differences(claimed: ResultRecord, fresh: ResultRecord) -> list[str]:
    """Every number, digest or mapping entry of ``claimed`` that ``fresh`` does not reproduce."""
    problems: list[str] = []
    claimed_digest = claimed.predictions.sha256 if claimed.predictions else None
    fresh_digest = fresh.predictions.sha256 if fresh.predictions else None
    if claimed_digest != fresh_digest:
        problems.append(f"predictions sha256 {claimed_digest} != files on disk {fresh_digest}")
    ours, theirs = metric_values(claimed), metric_values(fresh)
    for name, value in sorted(ours.items()):
        if name not in theirs:
            problems.append(f"{name}: record has {value!r}, the evaluation gives none")
        elif abs(value - theirs[name]) > REPRODUCTION_TOLERANCE:
            problems.append(f"{name}: record has {value!r}, re-evaluated {theirs[name]!r}")
    if claimed.mapping and claimed.mapping != fresh.mapping:
        changed = sorted(
            (
                p
                for p in set(claimed.mapping) | set(fresh.mapping)
                if claimed.mapping.get(p) != fresh.mapping.get(p)
            ),
            key=int,
        )
        problems.append(f"mapping differs for pseudo-class(es) {', '.join(changed)}")
    return problems


def verify_record(stored: StoredRecord, pred_root: Path, workers: int = 1) -> VerifyOutcome:
    """Verify one record (see the module docstring)."""
    record = stored.record
    if record.provenance != "reproduced":
        return VerifyOutcome(stored.relative_path, "not checked", reason="reported in a paper")
    folder = predictions_folder(pred_root, record)
    if not folder.is_dir():
        return VerifyOutcome(
            stored.relative_path, "not checked", reason=f"no predictions at {folder}"
        )
    problems = record_problems(record)
    try:
        problems += differences(record, reevaluate(record, folder, workers))
    except VpsbenchError as error:
        problems.append(f"cannot re-evaluate: {error}")
    status: Status = "failed" if problems else "ok"
    return VerifyOutcome(stored.relative_path, status, tuple(problems))


def verify_records(
    records: Sequence[StoredRecord], pred_root: Path, workers: int = 1
) -> list[VerifyOutcome]:
    """Verify every record, in store order."""
    return [verify_record(stored, pred_root, workers) for stored in records]
