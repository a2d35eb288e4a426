"""Checks that a record's numbers agree with each other before it is filed.

STQ is sqrt(AQ · SQ), for the split and for every sequence, and the split's AQ is the
tube-weighted mean of the sequences' AQ. Reported numbers are rounded (``precision``, e.g. 0.001
for 0.1 %), so a check passes when some unrounded values inside the rounding intervals satisfy it.
A record's ``command`` must be a vpsbench command line that agrees with the record (a
``run-method`` names its method, dataset and split) and a stand-in's command loads no weights.
"""

from __future__ import annotations

import math
import shlex

from vpsbench.datasets import dataset_class, dataset_names
from vpsbench.records import ResultRecord, SequenceMetrics

#: Slack on top of the rounding interval: float error of numbers computed exactly.
EXACT_TOLERANCE = 1e-9
#: ``--set`` keys that load a published model or its predictions: a stand-in never has them.
WEIGHT_SETTINGS = ("weights", "depthg_weights", "dino_weights", "per_frame")


def stq_is_consistent(stq: float, aq: float, sq: float, precision: float | None) -> bool:
    """Whether some AQ, SQ and STQ within half a rounding step satisfy STQ = sqrt(AQ · SQ)."""
    half = (precision or 0.0) / 2
    lowest = math.sqrt(max(aq - half, 0.0) * max(sq - half, 0.0))
    highest = math.sqrt(min(aq + half, 1.0) * min(sq + half, 1.0))
    return lowest <= stq + half + EXACT_TOLERANCE and highest >= stq - half - EXACT_TOLERANCE


def _tube_weighted_aq(rows: list[SequenceMetrics]) -> float | None:
    """Σ AQ_s · tubes_s / Σ tubes_s, or None when a sequence lacks its tube count."""
    if not rows or any(row.tubes is None for row in rows):
        return None
    total = sum(row.tubes or 0 for row in rows)
    if total == 0:
        return 0.0
    return sum(row.aq * (row.tubes or 0) for row in rows) / total


def _check_dataset(record: ResultRecord) -> list[str]:
    """The dataset must be registered and have the split."""
    names = dataset_names()
    if record.dataset not in names:
        return [f"unknown dataset {record.dataset!r}; known datasets: {', '.join(names)}"]
    splits = dataset_class(record.dataset).facts.splits
    if record.split not in splits:
        return [f"{record.dataset} has no split {record.split!r}; splits: {', '.join(splits)}"]
    return []


def _check_sequences(record: ResultRecord) -> list[str]:
    """Per-sequence STQ, tube-weighted AQ and the counts must agree."""
    problems: list[str] = []
    rows = record.metrics.per_sequence
    precision = record.precision
    names = [row.sequence for row in rows]
    if len(set(names)) != len(names):
        problems.append("per_sequence lists a sequence twice")
    for row in rows:
        if not stq_is_consistent(row.stq, row.aq, row.sq, precision):
            problems.append(
                f"sequence {row.sequence}: STQ {row.stq!r} != sqrt(AQ {row.aq!r} · SQ {row.sq!r})"
            )
    weighted = _tube_weighted_aq(list(rows))
    if weighted is not None:
        slack = (precision or 0.0) + EXACT_TOLERANCE
        if abs(weighted - record.metrics.aq) > slack:
            problems.append(
                f"AQ {record.metrics.aq!r} is not the tube-weighted mean of the sequences' AQ "
                f"({weighted!r})"
            )
    counts = record.counts
    if counts is not None and rows:
        if counts.sequences != len(rows):
            problems.append(f"counts.sequences is {counts.sequences} but {len(rows)} are listed")
        frames = [row.frames for row in rows]
        total = sum(n or 0 for n in frames)
        if all(n is not None for n in frames) and total != counts.frames:
            problems.append(f"counts.frames is {counts.frames} but the sequences add up to {total}")
    return problems


def _check_classes(record: ResultRecord) -> list[str]:
    """Per-class and mapping names must be classes the protocol evaluates."""
    known = set(record.protocol.thing_classes) | set(record.protocol.stuff_classes)
    if not known:
        return []
    problems = [
        f"iou_per_class names {name!r}, not an evaluated class of the protocol"
        for name in sorted(record.metrics.iou_per_class)
        if name not in known
    ]
    problems += [
        f"mapping sends pseudo-class {pseudo} to {target!r}, not an evaluated class"
        for pseudo, target in sorted(record.mapping.items(), key=lambda item: int(item[0]))
        if target != "void" and target not in known
    ]
    return problems


def _vpsbench_arguments(words: list[str]) -> list[str] | None:
    """The arguments after ``vpsbench`` (or ``python -m vpsbench``, ``torchrun … -m vpsbench``)."""
    position = 0
    while position < len(words) and "=" in words[position] and not words[position].startswith("-"):
        position += 1  # leading VAR=value environment assignments
    if position < len(words) and words[position].rsplit("/", 1)[-1] == "vpsbench":
        return words[position + 1 :]
    for index in range(position, len(words) - 1):
        if words[index] == "-m" and words[index + 1] == "vpsbench":
            return words[index + 2 :]
    return None


def _option_values(arguments: list[str], *names: str) -> list[str]:
    """Every value of an option given as ``--name value`` or ``--name=value``."""
    values = []
    for index, word in enumerate(arguments):
        if word in names and index + 1 < len(arguments):
            values.append(arguments[index + 1])
        values += [word.split("=", 1)[1] for name in names if word.startswith(f"{name}=")]
    return values


def _check_command(record: ResultRecord) -> list[str]:
    """The command must run vpsbench, agree with the record and, for a stand-in, load nothing."""
    if record.command is None:
        return []
    try:
        words = shlex.split(record.command)
    except ValueError as error:
        return [f"command is not a shell command line: {error}"]
    arguments = _vpsbench_arguments(words)
    if not arguments:
        return ["command does not run vpsbench (vpsbench …, python -m vpsbench …)"]
    problems = []
    if arguments[0] == "run-method":
        named = arguments[1] if len(arguments) > 1 else ""
        if record.method != named and not record.method.startswith(f"{named}-"):
            problems.append(f"command runs method {named!r} but the record is {record.method!r}")
        datasets = _option_values(arguments, "--dataset", "-d")
        if datasets != [record.dataset]:
            problems.append(
                f"command's --dataset {datasets} is not the record's {record.dataset!r}"
            )
        splits = _option_values(arguments, "--split")
        if splits and splits != [record.split]:
            problems.append(f"command's --split {splits} is not the record's {record.split!r}")
    if record.is_stand_in:
        settings = _option_values(arguments, "--set")
        loaded = [s for s in settings if s.partition("=")[0].strip() in WEIGHT_SETTINGS]
        if loaded:
            problems.append(
                f"a weight-free stand-in record whose command loads {loaded[0]!r}: "
                "with weights it is not the stand-in"
            )
    return problems


def record_problems(record: ResultRecord) -> list[str]:
    """Every inconsistency of a (schema-valid) record, one line each; empty when it is sound."""
    problems = _check_dataset(record)
    metrics = record.metrics
    if not stq_is_consistent(metrics.stq, metrics.aq, metrics.sq, record.precision):
        problems.append(
            f"STQ {metrics.stq!r} != sqrt(AQ {metrics.aq!r} · SQ {metrics.sq!r})"
            + (f" within the precision {record.precision!r}" if record.precision else "")
        )
    problems += _check_sequences(record) + _check_classes(record)
    return problems + _check_command(record)
