"""Result records: one versioned, validated JSON file that says exactly how a number was obtained.

A record is what the leaderboard shows and what ``vpsbench submit`` files: the method and its
version, dataset and split, the protocol, the metrics (fractions in [0, 1], never %), the
pseudo→ground-truth mapping, the SHA-256 of the prediction files and whether vpsbench reproduced
the numbers or a paper reported them, what model made the predictions (a ``stand-in`` is
vpsbench's weight-free substitute, never the published model) and the command that regenerates
them. Records come from strangers, so every field is validated (http(s) links only, slugs that
cannot escape a folder, bounded sizes) before anything uses them. Schema version 1 records (no
``model``/``command``) are still read: they are migrated to the current version on load.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

import vpsbench
from vpsbench.errors import InputError, VpsbenchError
from vpsbench.formats.atomic import atomic_write_text

RECORD_SCHEMA_VERSION: Final = 2
#: Older versions :func:`parse_record` still reads, migrating them to the current one.
OLDER_SCHEMA_VERSIONS: Final = (1,)
V2_FIELDS: Final = frozenset({"model", "command"})
MAX_COMMAND_LENGTH = 2000
MAX_RECORD_BYTES = 1 << 20  # 1 MiB: a record is metadata and numbers, never data
MAX_URL_LENGTH = 2000

#: A method, dataset or split id: lower-case words joined by single ``-``, ``_`` or ``.``.
SLUG_PATTERN = r"^[a-z0-9]+(?:[-_.][a-z0-9]+)*$"

#: Unicode's bidirectional controls (marks, embeddings, overrides, isolates): invisible, they
#: reorder the text around them, so ``evil\u202egnp.exe`` displays as ``evilexe.png``.
BIDI_CONTROLS: Final = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)


def _refuse_bidi_controls(text: str) -> str:
    """Refuse text with bidirectional control characters: they display text disguised."""
    found = next((ch for ch in text if ch in BIDI_CONTROLS), None)
    if found is not None:
        raise ValueError(
            f"contains the bidirectional control character U+{ord(found):04X}, "
            "which displays the text disguised"
        )
    return text


def neutralise_bidi(text: str) -> str:
    """Text safe to display: each bidirectional control becomes a visible ``[U+202E]``."""
    if not BIDI_CONTROLS.intersection(text):
        return text
    return "".join(f"[U+{ord(ch):04X}]" if ch in BIDI_CONTROLS else ch for ch in text)


NoBidi = AfterValidator(_refuse_bidi_controls)
Slug = Annotated[str, StringConstraints(pattern=SLUG_PATTERN, max_length=64)]
SingleLine = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f-\x9f]+$"),
    NoBidi,
]
Paragraph = Annotated[str, StringConstraints(max_length=5000), NoBidi]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
GitCommit = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{7,64}$")]
Fraction = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Provenance = Literal["reproduced", "reported"]
#: What made the predictions: the method's ``published`` weights, weights ``trained`` by the run,
#: a ``training-free`` procedure (no learned weights of its own, e.g. pseudo-labels), vpsbench's
#: weight-free ``stand-in`` for a model whose weights were not available (NOT the published
#: model), or ``external`` predictions made elsewhere and only tracked/scored here.
ModelKind = Literal["published", "trained", "training-free", "stand-in", "external"]
STAND_IN: Final = "stand-in"
#: A shell command line: one printable line (quotes and spaces allowed), bounded.
CommandLine = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=MAX_COMMAND_LENGTH, pattern=r"^[^\x00-\x1f\x7f-\x9f]+$"
    ),
    NoBidi,
]


def _check_http_url(url: str) -> str:
    """Accept only absolute http(s) URLs without spaces, quotes or angle brackets."""
    if len(url) > MAX_URL_LENGTH:
        raise ValueError(f"URL longer than {MAX_URL_LENGTH} characters")
    if any(
        ch.isspace() or ch in "\"'<>`\\" or ord(ch) < 32 or ord(ch) == 127 or ch in BIDI_CONTROLS
        for ch in url
    ):
        raise ValueError("URL contains whitespace, quotes, backslashes or control characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("only absolute http:// or https:// links are allowed")
    return url


HttpUrl = Annotated[str, AfterValidator(_check_http_url)]


class _Model(BaseModel):
    """Strict, closed, immutable: unknown fields and type coercions are errors."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Link(_Model):
    """A labelled web link (paper, code, project page)."""

    label: SingleLine
    url: HttpUrl


class Citation(_Model):
    """Where reported numbers come from: the reference and the table or figure in it."""

    text: Paragraph
    locator: SingleLine | None = None  # e.g. "Table 2"
    url: HttpUrl | None = None


class Protocol(_Model):
    """How the numbers were computed: matching, label space, thing sets, dataset options."""

    matching: SingleLine
    label_space: SingleLine | None = None
    thing_classes: list[SingleLine] = Field(default_factory=list, max_length=1000)
    stuff_classes: list[SingleLine] = Field(default_factory=list, max_length=1000)
    pseudo_things: list[Annotated[int, Field(ge=0)]] | None = Field(default=None, max_length=10000)
    count_void_column: bool | None = None
    vpq_windows: list[Annotated[int, Field(ge=1)]] | None = Field(default=None, max_length=100)
    options: dict[SingleLine, SingleLine] = Field(default_factory=dict, max_length=100)


class SequenceMetrics(_Model):
    """STQ/AQ/SQ of one sequence with the number of ground-truth tubes and frames."""

    sequence: SingleLine
    stq: Fraction
    aq: Fraction
    sq: Fraction
    tubes: Annotated[int, Field(ge=0)] | None = None
    frames: Annotated[int, Field(ge=0)] | None = None


class Metrics(_Model):
    """The numbers of a record, as fractions in [0, 1]."""

    stq: Fraction
    aq: Fraction
    sq: Fraction
    vpq: Fraction | None = None
    vpq_things: Fraction | None = None
    vpq_stuff: Fraction | None = None
    pq: Fraction | None = None
    iou_per_class: dict[SingleLine, Fraction] = Field(default_factory=dict, max_length=1000)
    per_sequence: list[SequenceMetrics] = Field(default_factory=list, max_length=10000)


class Counts(_Model):
    """How much was evaluated."""

    sequences: Annotated[int, Field(ge=0)]
    frames: Annotated[int, Field(ge=0)]


class PredictionFiles(_Model):
    """The evaluated prediction files: format and one SHA-256 over their sorted manifest."""

    sha256: Sha256
    format: SingleLine | None = None
    divisor: Annotated[int, Field(ge=1)] | None = None  # divisor16 only


class RunInfo(_Model):
    """Where and how long the evaluation ran."""

    seconds: Annotated[float, Field(ge=0.0, allow_inf_nan=False)] | None = None
    machine: SingleLine | None = None
    python: SingleLine | None = None
    hardware: SingleLine | None = None


class ResultRecord(_Model):
    """One result of one method on one dataset split, with everything needed to trace it."""

    schema_version: Literal[2] = RECORD_SCHEMA_VERSION
    method: Slug
    method_name: SingleLine
    method_version: SingleLine
    method_commit: GitCommit | None = None
    dataset: Slug
    split: Slug
    protocol: Protocol
    metrics: Metrics
    precision: Annotated[float, Field(gt=0.0, le=0.1, allow_inf_nan=False)] | None = None
    mapping: dict[Annotated[str, StringConstraints(pattern=r"^[0-9]{1,6}$")], SingleLine] = Field(
        default_factory=dict, max_length=100000
    )
    counts: Counts | None = None
    predictions: PredictionFiles | None = None
    vpsbench_version: SingleLine | None = None
    run: RunInfo | None = None
    timestamp: AwareDatetime
    provenance: Provenance
    model: ModelKind | None = None
    command: CommandLine | None = None
    citation: Citation | None = None
    links: list[Link] = Field(default_factory=list, max_length=20)
    notes: Paragraph | None = None

    @model_validator(mode="after")
    def _provenance_is_complete(self) -> ResultRecord:
        """A reported number needs its citation; a reproduced one its predictions and version."""
        if self.provenance == "reported" and self.citation is None:
            raise ValueError("a reported record needs a citation")
        if self.provenance == "reproduced":
            if self.predictions is None:
                raise ValueError("a reproduced record needs the predictions' sha256")
            if self.vpsbench_version is None:
                raise ValueError("a reproduced record needs the vpsbench version")
        if self.model == STAND_IN and self.provenance != "reproduced":
            raise ValueError("only a reproduced record can come from a weight-free stand-in")
        return self

    @property
    def is_stand_in(self) -> bool:
        """Whether the predictions come from vpsbench's weight-free stand-in, not the model."""
        return self.model == STAND_IN


def validation_summary(error: ValidationError) -> str:
    """The first validation problem as one line (``field.path: message``) and how many more."""
    problems = error.errors(include_url=False)
    first = problems[0]
    where = ".".join(str(part) for part in first["loc"]) or "record"
    text = "".join(ch if ch.isprintable() else "?" for ch in f"{where}: {first['msg']}")[:300]
    if len(problems) > 1:
        text += f" (and {len(problems) - 1} more problem(s))"
    return text


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """JSON object hook: a key given twice is an error, not a silent last-one-wins."""
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise ValueError(f"duplicate key {key!r}")
        document[key] = value
    return document


def _reject_constant(name: str) -> float:
    """JSON hook: NaN and Infinity are not numbers a record may hold."""
    raise ValueError(f"{name} is not allowed")


def parse_record(text: str, source: str | Path) -> ResultRecord:
    """Validate a record's JSON text; any problem is an :class:`InputError` naming ``source``."""
    if len(text.encode("utf-8")) > MAX_RECORD_BYTES:
        raise InputError(source, f"record is larger than {MAX_RECORD_BYTES} bytes")
    try:
        document = json.loads(
            text, object_pairs_hook=_reject_duplicate_keys, parse_constant=_reject_constant
        )
    except json.JSONDecodeError as error:
        raise InputError(
            source, f"not valid JSON: {error.msg} (line {error.lineno} column {error.colno})"
        ) from None
    except ValueError as error:
        raise InputError(source, f"not valid JSON: {error}") from None
    except RecursionError:
        raise InputError(source, "not valid JSON: nested too deeply") from None
    version = document.get("schema_version") if isinstance(document, dict) else None
    if type(version) is int and version in OLDER_SCHEMA_VERSIONS:  # not True/1.0
        try:
            text = json.dumps(migrate_document(document))
        except ValueError as error:
            raise InputError(source, f"invalid record: {error}") from None
    try:
        return ResultRecord.model_validate_json(text)
    except ValidationError as error:
        raise InputError(source, f"invalid record: {validation_summary(error)}") from None


def migrate_document(document: Mapping[str, Any]) -> dict[str, Any]:
    """An older record's JSON document in the current schema.

    Version 1 had no ``model`` and ``command``: they stay unset (unknown), which the board shows
    as "not stated" and never as a stand-in.
    """
    migrated = dict(document)
    if migrated.get("schema_version") == 1:
        added = sorted(V2_FIELDS & set(migrated))
        if added:
            raise ValueError(f"schema_version 1 has no field {added[0]!r} (it is version 2's)")
        migrated["schema_version"] = 2
    return migrated


def read_record(path: str | Path) -> ResultRecord:
    """Read and validate a record file (at most 1 MiB, UTF-8 JSON)."""
    source = Path(path)
    try:
        with source.open("rb") as handle:
            data = handle.read(MAX_RECORD_BYTES + 1)
    except OSError as error:
        raise InputError(source, f"cannot read the record: {error.strerror or error}") from None
    if len(data) > MAX_RECORD_BYTES:
        raise InputError(source, f"record is larger than {MAX_RECORD_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(source, "record is not UTF-8 text") from None
    return parse_record(text, source)


def record_to_json(record: ResultRecord) -> str:
    """The canonical text of a record: sorted keys, indent 2, trailing newline, no nulls."""
    document = record.model_dump(mode="json", exclude_none=True)
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_record(path: str | Path, record: ResultRecord) -> None:
    """Write a record atomically in its canonical, diff-friendly form."""
    text = record_to_json(record)
    if len(text.encode("utf-8")) > MAX_RECORD_BYTES:
        raise InputError(path, f"record would be larger than {MAX_RECORD_BYTES} bytes")
    atomic_write_text(path, text)


_PROTOCOL_FIELDS = {
    "matching",
    "label_space",
    "thing_classes",
    "stuff_classes",
    "pseudo_things",
    "count_void_column",
}


def _protocol_from_results(results: Mapping[str, Any]) -> dict[str, Any]:
    """Split the results' protocol block into the record's named settings and dataset options."""
    block: Mapping[str, Any] = results["protocol"]
    protocol: dict[str, Any] = {key: block[key] for key in _PROTOCOL_FIELDS if key in block}
    protocol["options"] = {
        str(key): str(value) for key, value in block.items() if key not in _PROTOCOL_FIELDS
    }
    windows = results["metrics"].get("VPQ_per_window")
    if windows:
        protocol["vpq_windows"] = sorted(int(window) for window in windows)
    return protocol


def _metrics_from_results(results: Mapping[str, Any]) -> dict[str, Any]:
    """The record's metrics block from the results' ``metrics`` and ``per_sequence``."""
    source: Mapping[str, Any] = results["metrics"]
    metrics: dict[str, Any] = {
        "stq": source["STQ"],
        "aq": source["AQ"],
        "sq": source["SQ"],
        "iou_per_class": dict(source.get("IoU_per_class", {})),
        "per_sequence": [
            {
                "sequence": row["sequence"],
                "stq": row["STQ"],
                "aq": row["AQ"],
                "sq": row["SQ"],
                "tubes": row.get("tubes"),
                "frames": row.get("frames"),
            }
            for row in results.get("per_sequence", [])
        ],
    }
    for ours, theirs in (("vpq", "VPQ"), ("vpq_things", "VPQ_th"), ("vpq_stuff", "VPQ_st")):
        if source.get(theirs) is not None:
            metrics[ours] = source[theirs]
    if isinstance(source.get("PQ"), Mapping):
        metrics["pq"] = source["PQ"]["PQ"]
    return metrics


def record_from_results(
    results: Mapping[str, Any],
    method: str,
    method_version: str,
    *,
    method_name: str | None = None,
    method_commit: str | None = None,
    links: Sequence[Link] = (),
    notes: str | None = None,
    hardware: str | None = None,
    prediction_divisor: int | None = None,
    timestamp: datetime | None = None,
    model: str | None = None,
    command: str | None = None,
) -> ResultRecord:
    """A ``reproduced`` record from the document ``result_to_dict`` wrote for an evaluation.

    ``model`` says what made the predictions (see :data:`ModelKind`) and ``command`` the command
    line that regenerates them.
    """
    try:
        run: Mapping[str, Any] = results.get("run", {})
        predictions: Mapping[str, Any] = results["predictions"]
        document: dict[str, Any] = {
            "schema_version": RECORD_SCHEMA_VERSION,
            "method": method,
            "method_name": method_name or method,
            "method_version": method_version,
            "method_commit": method_commit,
            "dataset": results["dataset"],
            "split": results["split"],
            "protocol": _protocol_from_results(results),
            "metrics": _metrics_from_results(results),
            "mapping": {str(key): str(value) for key, value in results["mapping"].items()},
            "counts": results.get("counts"),
            "predictions": {
                "sha256": predictions["sha256"],
                "format": predictions.get("format"),
                "divisor": prediction_divisor,
            },
            "vpsbench_version": results.get("vpsbench_version", vpsbench.__version__),
            "run": {
                "seconds": run.get("seconds"),
                "machine": run.get("machine"),
                "python": run.get("python"),
                "hardware": hardware,
            },
            "timestamp": timestamp or datetime.now(UTC).replace(microsecond=0),
            "provenance": "reproduced",
            "model": model,
            "command": command,
            "links": list(links),
            "notes": notes,
        }
    except (KeyError, TypeError, AttributeError) as error:
        raise VpsbenchError(f"not an evaluation results document: missing {error}") from None
    try:
        return ResultRecord.model_validate(document, strict=False)
    except ValidationError as error:
        raise VpsbenchError(f"cannot make a record: {validation_summary(error)}") from None


def metric_values(record: ResultRecord) -> dict[str, float]:
    """Every number of a record under a stable dotted name (for comparisons and reports)."""
    metrics = record.metrics
    values: dict[str, float] = {
        name: value
        for name in ("stq", "aq", "sq", "vpq", "vpq_things", "vpq_stuff", "pq")
        if (value := getattr(metrics, name)) is not None
    }
    values.update({f"iou.{name}": value for name, value in metrics.iou_per_class.items()})
    for row in metrics.per_sequence:
        values.update(
            {f"sequence.{row.sequence}.{m}": getattr(row, m) for m in ("stq", "aq", "sq")}
        )
    return values
