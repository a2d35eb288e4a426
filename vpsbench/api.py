"""The Python API: ``vpsbench.evaluate(...)`` and ``vpsbench.load_results(path)``.

``evaluate`` takes the options of ``vpsbench evaluate`` as keyword arguments (the same values: the
CLI's strings or the enums), checks them before any frame is read, runs the streaming evaluator
and returns :class:`Results`; the CLI is a shell over it. A :class:`Results` holds exactly the
results JSON (``to_dict``, ``save``) and turns it into pandas tables (``to_pandas``), whether it
was just computed or read back by ``load_results``.
"""

from __future__ import annotations

import copy
import importlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from vpsbench import evaluation
from vpsbench.datasets import open_dataset
from vpsbench.errors import InputError, VpsbenchError
from vpsbench.evaluation import ALL_METRICS, EvaluationJob, EvaluationResult, EvaluationSettings
from vpsbench.executors import ExecutorKind
from vpsbench.formats.atomic import atomic_write_text
from vpsbench.matching import MatchingMode
from vpsbench.predictions import MAX_CLASS_ID, PredictionSource
from vpsbench.results import RESULTS_SCHEMA_VERSION, result_to_dict, results_json, summary_metrics
from vpsbench.statistics import SequenceStatistics

#: ``progress(done, total, sequence)``: once with ``done = 0`` before the first sequence is read,
#: then after each reduced sequence (in the order they finish merging).
ProgressCallback = Callable[[int, int, str], None]
PathLike = str | os.PathLike[str]

#: The tables of :meth:`Results.to_pandas`.
TABLES = (
    "summary",
    "per_class",
    "per_sequence",
    "per_window",
    "per_window_class",
    "mapping",
    "tracking",
    "tracking_per_sequence",
)
TableName = Literal[
    "summary",
    "per_class",
    "per_sequence",
    "per_window",
    "per_window_class",
    "mapping",
    "tracking",
    "tracking_per_sequence",
]
#: TrackEval's names of the class-averaged and detection-averaged rows of the tracking table.
CLASS_AVERAGED, DETECTION_AVERAGED = "cls_comb_cls_av", "cls_comb_det_av"


def evaluate(
    pred: PathLike,
    dataset: str,
    *,
    root: PathLike | None = None,
    split: str | None = None,
    protocol: Mapping[str, str] | Sequence[str] | None = None,
    matching: MatchingMode | str = MatchingMode.THING_STUFF_HUNGARIAN,
    pred_format: str = "auto",
    pred_divisor: int = 1000,
    num_classes: int | None = None,
    pred_things: Sequence[int] | str | None = None,
    metrics: Sequence[str] | str = ALL_METRICS,
    sequences: Sequence[str] | str | None = None,
    workers: int = 1,
    void_as_class: bool = True,
    progress: ProgressCallback | None = None,
    executor: ExecutorKind | str = ExecutorKind.LOCAL,
    ray_address: str | None = None,
    save_stats: PathLike | None = None,
) -> Results:
    """Score the prediction folder ``pred`` on ``dataset`` under the unsupervised protocol.

    Lists may be given as Python sequences or as the CLI's comma-separated strings;
    ``protocol`` as a mapping or as ``KEY=VALUE`` strings. A bad option raises
    :class:`~vpsbench.errors.VpsbenchError` with one line naming it, before any frame is read.
    ``executor="ray"`` reduces sequences on a Ray cluster (``ray_address``); ``save_stats``
    writes the statistics file that ``vpsbench rescore`` scores again.
    """
    settings = EvaluationSettings(
        matching=_matching(matching),
        pseudo_things=_class_ids("--pred-things", pred_things),
        metrics=tuple(_names("--metrics", metrics) or ()),
        count_void_column=_flag("--void-as-class", void_as_class),
    )
    wanted = _names("--sequences", sequences)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise VpsbenchError(f"--workers must be a positive integer, got {workers!r}")
    job = open_job(dataset, root, split, protocol, pred, pred_format, pred_divisor, num_classes)
    on_sequence = None
    if progress is not None:
        total = len(wanted) if wanted else len(job.dataset.sequences(job.split))
        done = [0]

        def on_sequence(statistics: SequenceStatistics) -> None:
            done[0] += 1
            progress(done[0], total, statistics.name)

        progress(0, total, "")
    result = evaluation.evaluate(
        job,
        settings,
        sequences=wanted,
        workers=workers,
        on_sequence=on_sequence,
        executor=executor,
        ray_address=ray_address,
        save_stats=None if save_stats is None else Path(save_stats).expanduser(),
    )
    return Results.from_evaluation(result)


def rescore(
    stats: PathLike | Sequence[PathLike],
    *,
    matching: MatchingMode | str = MatchingMode.THING_STUFF_HUNGARIAN,
    pred_things: Sequence[int] | str | None = None,
    metrics: Sequence[str] | str = ALL_METRICS,
    allow_partial: bool = False,
) -> Results:
    """Score statistics files of ``evaluate(save_stats=...)`` again, without reading a prediction.

    Several files are shards (other machines, other sequences) merged into one split; a sequence
    in two shards, a protocol mismatch or, unless ``allow_partial``, a missing official sequence
    is an error naming the file.
    """
    import time

    from vpsbench.stats_file import StatsFile, merge_stats

    started = time.perf_counter()
    paths = [Path(stats)] if isinstance(stats, str | os.PathLike) else [Path(p) for p in stats]
    if not paths:
        raise VpsbenchError("rescore needs at least one statistics file")
    pseudo_things = _class_ids("--pred-things", pred_things)
    chosen_metrics = tuple(_names("--metrics", metrics) or ())
    chosen_matching = _matching(matching)
    opened: list[StatsFile] = []
    try:
        for path in paths:
            opened.append(StatsFile(path.expanduser()))
        merged = merge_stats(opened)
        missing = merged.missing_official()
        if missing and not allow_partial:
            header = merged.header
            shown = ", ".join(missing[:5]) + (
                f" … ({len(missing)} in all)" if len(missing) > 5 else ""
            )
            raise InputError(
                paths[0],
                f"the statistics miss {len(missing)} official {header.dataset} {header.split} "
                f"sequences ({shown}); add the shards that hold them, or pass --allow-partial",
            )
        settings = EvaluationSettings(
            matching=chosen_matching,
            pseudo_things=pseudo_things,
            metrics=chosen_metrics,
            count_void_column=merged.header.count_void_column,
        )
        result = evaluation.score(merged, settings, started)
    finally:
        for stats_file in opened:
            stats_file.close()
    return Results.from_evaluation(result)


def open_job(
    dataset: str,
    root: PathLike | None,
    split: str | None,
    protocol: Mapping[str, str] | Sequence[str] | None,
    pred: PathLike,
    pred_format: str = "auto",
    pred_divisor: int = 1000,
    num_classes: int | None = None,
) -> EvaluationJob:
    """The dataset split and prediction folder to evaluate, checked (split, format, ranges)."""
    folder = None if root is None else Path(root).expanduser()
    opened = open_dataset(dataset, folder, parse_protocol(protocol))
    chosen_split = split or opened.default_split()
    if chosen_split not in opened.facts.splits:
        splits = ", ".join(opened.facts.splits)
        raise VpsbenchError(f"{dataset} has no split {chosen_split!r}; splits: {splits}")
    predictions = PredictionSource.open(
        Path(pred).expanduser(), pred_format, pred_divisor, num_classes
    )
    return EvaluationJob(opened, chosen_split, predictions)


def parse_protocol(pairs: Mapping[str, str] | Sequence[str] | None) -> dict[str, str]:
    """Protocol settings from a mapping or from ``KEY=VALUE`` strings (``--protocol``)."""
    if isinstance(pairs, Mapping):
        return {str(key): str(value) for key, value in pairs.items()}
    chosen: dict[str, str] = {}
    for pair in [pairs] if isinstance(pairs, str) else pairs or []:
        key, sep, value = str(pair).partition("=")
        if not sep or not key:
            raise VpsbenchError(f"--protocol expects KEY=VALUE, got {pair!r}")
        chosen[key.strip()] = value.strip()
    return chosen


def _names(option: str, value: Sequence[str] | str | None) -> list[str] | None:
    """A comma-separated string or a sequence of names (None or empty: not given)."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    bad = [item for item in items if not isinstance(item, str)]
    if bad:
        raise VpsbenchError(f"{option} expects names, got {bad[0]!r}")
    return [item.strip() for item in items if item.strip()] or None


def _class_ids(option: str, value: Sequence[int] | str | None) -> tuple[int, ...] | None:
    """Class ids from ``3,7`` or a sequence of ints (None when not given); others: an error."""
    if value is None:
        return None
    items: list[object] = (
        [item.strip() for item in value.split(",") if item.strip()]
        if isinstance(value, str)
        else list(value)
    )
    ids = []
    for item in items:
        if isinstance(item, str) and item.isdigit():
            item = int(item)
        if isinstance(item, bool) or not isinstance(item, int) or not 0 <= item <= MAX_CLASS_ID:
            raise VpsbenchError(
                f"{option} expects comma-separated class ids in 0..{MAX_CLASS_ID}, got {item!r}"
            )
        ids.append(item)
    return tuple(ids)


def _matching(value: MatchingMode | str) -> MatchingMode:
    try:
        return MatchingMode(value)
    except ValueError:
        choices = ", ".join(mode.value for mode in MatchingMode)
        raise VpsbenchError(
            f"--matching {value!r} is not a matching; use one of: {choices}"
        ) from None


def _flag(option: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise VpsbenchError(f"{option} expects True or False, got {value!r}")
    return value


def load_results(path: PathLike) -> Results:
    """Read a results JSON written by ``vpsbench evaluate --output`` or :meth:`Results.save`."""
    source = Path(path).expanduser()
    if not source.is_file():
        problem = "is a folder, not a results file" if source.is_dir() else "no such results file"
        raise InputError(source, problem)
    try:
        document = json.loads(source.read_text(encoding="utf-8"))
    except OSError as error:
        raise InputError(source, f"cannot read the results file: {error.strerror}") from None
    except ValueError as error:  # UnicodeDecodeError and JSONDecodeError
        raise InputError(source, f"not a JSON results file: {error}") from None
    return Results.from_dict(document, source=str(source))


@dataclass(frozen=True)
class Results:
    """One evaluation's numbers: exactly the results JSON, with tables for pandas.

    ``evaluation`` is the evaluator's in-memory result when the numbers were just computed
    (``None`` when they were read from a file). Numbers are fractions (0.25, not 25 %).
    """

    document: Mapping[str, Any] = field(repr=False)
    evaluation: EvaluationResult | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_evaluation(cls, result: EvaluationResult) -> Results:
        """The results of an evaluation just run."""
        return cls(result_to_dict(result), result)

    @classmethod
    def from_dict(cls, document: object, source: str = "results") -> Results:
        """Results from a results document; a file of another kind or version is an error."""
        if not isinstance(document, dict):
            raise InputError(source, "not a vpsbench results file (not a JSON object)")
        if "provenance" in document and "method" in document:
            raise InputError(
                source, "this is a leaderboard record, not a results file of `vpsbench evaluate`"
            )
        version = document.get("schema_version")
        if version != RESULTS_SCHEMA_VERSION:
            found = "no schema_version" if version is None else f"schema version {version!r}"
            raise InputError(
                source,
                f"not a vpsbench results file of schema version {RESULTS_SCHEMA_VERSION} "
                f"({found}); write one with `vpsbench evaluate --output`",
            )
        try:
            _ResultsShape.model_validate(document)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise InputError(source, f"not a valid results file: {where}: {first['msg']}") from None
        return cls(copy.deepcopy(document))

    def __repr__(self) -> str:
        numbers = ", ".join(f"{name} {value:.4f}" for _, name, value in self._headline()[:5])
        return f"Results({self.dataset} {self.split}: {numbers})"

    @property
    def dataset(self) -> str:
        """The dataset's name, e.g. ``kitti-step``."""
        return str(self.document["dataset"])

    @property
    def split(self) -> str:
        """The evaluated split."""
        return str(self.document["split"])

    @property
    def metrics(self) -> dict[str, float]:
        """Every headline number by name: STQ, AQ, SQ, then VPQ…, PQ…, tracking ones if run."""
        return {name: value for _, name, value in self._headline()}

    @property
    def stq(self) -> float:
        """Segmentation and Tracking Quality (fraction)."""
        return float(self.document["metrics"]["STQ"])

    @property
    def aq(self) -> float:
        """Association Quality (fraction)."""
        return float(self.document["metrics"]["AQ"])

    @property
    def sq(self) -> float:
        """Segmentation Quality, the mean IoU of STQ (fraction)."""
        return float(self.document["metrics"]["SQ"])

    @property
    def vpq(self) -> float | None:
        """Video Panoptic Quality averaged over the windows (None when not computed)."""
        return self.metrics.get("VPQ")

    @property
    def pq(self) -> float | None:
        """Image Panoptic Quality over all frames (None when not computed)."""
        return self.metrics.get("PQ")

    @property
    def tables(self) -> tuple[str, ...]:
        """The names :meth:`to_pandas` accepts for these results."""
        return tuple(name for name in TABLES if self._unavailable(name) is None)

    def to_dict(self) -> dict[str, Any]:
        """The results JSON content (a copy: changing it leaves these results alone)."""
        return copy.deepcopy(dict(self.document))

    def to_json(self) -> str:
        """The text of the results file, as ``evaluate --output`` writes it."""
        return results_json(self.document)

    def save(self, path: PathLike, *, overwrite: bool = False) -> Path:
        """Write the results JSON atomically; an existing file is replaced only if ``overwrite``."""
        target = Path(path)
        if target.is_dir():
            raise InputError(target, "is a folder; give a file name for the results")
        if target.exists() and not overwrite:
            raise InputError(target, "already exists; pass overwrite=True to replace it")
        atomic_write_text(target, self.to_json())
        return target

    def to_pandas(self, table: TableName | str = "summary") -> Any:
        """One table as a ``pandas.DataFrame`` (needs the ``dataframe`` extra).

        Tables (``Results.tables`` lists those these results have):

        * ``summary``: one row indexed by (dataset, split); STQ, AQ, SQ, VPQ…, PQ…, tracking.
        * ``per_class``: by class: kind (thing/stuff), IoU, then PQ, SQ, RQ, TP, FP, FN.
        * ``per_sequence``: by sequence: frames, tubes, STQ, AQ, SQ.
        * ``per_window``: by VPQ window size k: VPQ, VPQ_th, VPQ_st, SQ, RQ.
        * ``per_window_class``: by (k, class): VPQ, SQ, RQ, TP, FP, FN.
        * ``mapping``: by pseudo_class: the class it was matched to (``void``: none).
        * ``tracking``: by class, then the ``cls_comb_cls_av``/``cls_comb_det_av`` rows:
          HOTA/CLEAR/Identity numbers (only when those metrics were computed).
        * ``tracking_per_sequence``: the same by (sequence, class).
        """
        if table not in TABLES:
            raise VpsbenchError(f"unknown table {table!r}; tables: {', '.join(TABLES)}")
        missing = self._unavailable(table)
        if missing is not None:
            raise VpsbenchError(f"table {table!r} needs {missing}, which these results lack")
        pandas = _pandas()
        builder: Callable[[Any], Any] = getattr(self, f"_table_{table}")
        return builder(pandas)

    # --- tables -------------------------------------------------------------------------

    def _headline(self) -> list[tuple[str, str, float]]:
        return summary_metrics(self.document)

    def _unavailable(self, table: str) -> str | None:
        """What ``table`` needs that these results do not hold (None: it can be built)."""
        metrics = self.document["metrics"]
        if table.startswith("per_window") and "VPQ_per_window" not in metrics:
            return "VPQ (metrics with vpq)"
        if table.startswith("tracking") and "tracking" not in metrics:
            return "tracking metrics (metrics with hota, clear or identity)"
        return None

    def _table_summary(self, pd: Any) -> Any:
        headline = self._headline()
        index = pd.MultiIndex.from_tuples([(self.dataset, self.split)], names=["dataset", "split"])
        return pd.DataFrame(
            [[v for *_, v in headline]], index=index, columns=[n for _, n, _ in headline]
        )

    def _table_per_class(self, pd: Any) -> Any:
        metrics = self.document["metrics"]
        protocol = self.document["protocol"]
        things = set(protocol["thing_classes"])
        pq_classes: Mapping[str, Any] = metrics.get("PQ", {}).get("per_class", {})
        names = list(
            dict.fromkeys(
                [
                    *metrics["IoU_per_class"],
                    *pq_classes,
                    *protocol["thing_classes"],
                    *protocol["stuff_classes"],
                ]
            )
        )
        columns = ["kind", "IoU"] + (
            ["PQ", "SQ", "RQ", "TP", "FP", "FN"] if "PQ" in metrics else []
        )
        rows = []
        for name in names:
            row = {"kind": "thing" if name in things else "stuff"}
            row["IoU"] = metrics["IoU_per_class"].get(name, float("nan"))
            if "PQ" in metrics:
                values = pq_classes.get(name, {})
                row |= {key: values.get(key, float("nan")) for key in columns[2:]}
            rows.append(row)
        frame = pd.DataFrame(rows, index=pd.Index(names, name="class"), columns=columns)
        return _counts_as_integers(frame, ("TP", "FP", "FN"))

    def _table_per_sequence(self, pd: Any) -> Any:
        sequences = self.document["per_sequence"]
        columns = ["frames", "tubes", "STQ", "AQ", "SQ"]
        index = pd.Index([s["sequence"] for s in sequences], name="sequence")
        return pd.DataFrame(
            [[s[c] for c in columns] for s in sequences], index=index, columns=columns
        )

    def _table_per_window(self, pd: Any) -> Any:
        windows = self.document["metrics"]["VPQ_per_window"]
        renamed = {"VPQ": "PQ", "VPQ_th": "PQ_th", "VPQ_st": "PQ_st", "SQ": "SQ", "RQ": "RQ"}
        index = pd.Index([int(k) for k in windows], name="k")
        rows = [[window[key] for key in renamed.values()] for window in windows.values()]
        return pd.DataFrame(rows, index=index, columns=list(renamed))

    def _table_per_window_class(self, pd: Any) -> Any:
        windows = self.document["metrics"]["VPQ_per_window"]
        keys = {"VPQ": "PQ", "SQ": "SQ", "RQ": "RQ", "TP": "TP", "FP": "FP", "FN": "FN"}
        labels, rows = [], []
        for k, window in windows.items():
            for name, values in window["per_class"].items():
                labels.append((int(k), name))
                rows.append([values[key] for key in keys.values()])
        index = pd.MultiIndex.from_tuples(labels, names=["k", "class"])
        return pd.DataFrame(rows, index=index, columns=list(keys))

    def _table_mapping(self, pd: Any) -> Any:
        mapping = self.document["mapping"]
        index = pd.Index([int(p) for p in mapping], name="pseudo_class")
        return pd.DataFrame({"class": list(mapping.values())}, index=index)

    def _table_tracking(self, pd: Any) -> Any:
        tracking = self.document["metrics"]["tracking"]
        rows = {
            **tracking["per_class"],
            CLASS_AVERAGED: tracking["class_averaged"],
            DETECTION_AVERAGED: tracking["detection_averaged"],
        }
        frame = pd.DataFrame.from_dict(rows, orient="index")
        frame.index.name = "class"
        return frame

    def _table_tracking_per_sequence(self, pd: Any) -> Any:
        per_sequence = self.document["metrics"]["tracking"]["per_sequence"]
        labels = [(seq, name) for seq, classes in per_sequence.items() for name in classes]
        rows = [per_sequence[seq][name] for seq, name in labels]
        index = pd.MultiIndex.from_tuples(labels, names=["sequence", "class"])
        return pd.DataFrame(rows, index=index)


def _pandas() -> Any:
    """pandas, imported on first use; its absence is one line naming the extra to install."""
    try:
        return importlib.import_module("pandas")
    except ImportError:
        raise VpsbenchError(
            "to_pandas needs pandas: install the dataframe extra, pip install 'vpsbench[dataframe]'"
        ) from None


def _counts_as_integers(frame: Any, columns: Sequence[str]) -> Any:
    """Count columns as pandas' nullable integers (a class without a value stays <NA>)."""
    present = [column for column in columns if column in frame.columns]
    return frame.astype(dict.fromkeys(present, "Int64")) if present else frame


_Digits = Annotated[str, StringConstraints(pattern=r"^[0-9]+$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class _SequenceShape(_Strict):
    sequence: str
    frames: int
    tubes: int
    STQ: float
    AQ: float
    SQ: float


class _ClassPQShape(_Strict):
    PQ: float
    SQ: float
    RQ: float
    TP: int
    FP: int
    FN: int


class _PQShape(_Strict):
    PQ: float
    SQ: float
    RQ: float
    PQ_th: float
    PQ_st: float
    per_class: dict[str, _ClassPQShape]


class _TrackingShape(_Strict):
    class_averaged: dict[str, float]
    detection_averaged: dict[str, float]
    per_class: dict[str, dict[str, float]]
    per_sequence: dict[str, dict[str, dict[str, float]]]


class _MetricsShape(_Strict):
    STQ: float
    AQ: float
    SQ: float
    IoU_per_class: dict[str, float]
    VPQ_per_window: dict[_Digits, _PQShape] | None = None
    PQ: _PQShape | None = None
    tracking: _TrackingShape | None = None


class _ProtocolShape(_Strict):
    thing_classes: list[str]
    stuff_classes: list[str]


class _ResultsShape(_Strict):
    """What the tables read from a results document (other keys are kept, not checked)."""

    dataset: str
    split: str
    protocol: _ProtocolShape
    metrics: _MetricsShape
    per_sequence: list[_SequenceShape]
    mapping: dict[_Digits, str]
