"""The streaming evaluator: dataset → frames → per-sequence statistics → merge → matching → metrics.

Each sequence is read once and reduced to its joint histograms (:mod:`vpsbench.statistics`);
sequences are independent, so they can be reduced by worker processes in any order and merged in
sequence order, which makes the numbers identical whatever the worker count. Only then, with the
overlaps of the whole split known, are pseudo-classes matched to ground-truth classes and the
metrics computed from the (tiny) statistics. Per-frame tables, needed by VPQ, are spilled to a
temporary folder so that memory does not grow with the number of frames.
"""

from __future__ import annotations

import dataclasses
import itertools
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vpsbench.datasets.base import Dataset, LabelSpace
from vpsbench.errors import InputError, VpsbenchError
from vpsbench.matching import ClassMatching, MatchingMode, match_pseudo_classes
from vpsbench.metrics.pq import PQResult, panoptic_quality
from vpsbench.metrics.stq import STQResult, segmentation_and_tracking_quality
from vpsbench.metrics.tracking import TRACKING_METRICS, TrackingResult, tracking_quality
from vpsbench.metrics.vpq import VPQResult, video_panoptic_quality
from vpsbench.predictions import PredictionSource, manifest_digest
from vpsbench.statistics import JointHistogram, SequenceStatistics, joint_histogram
from vpsbench.video import FrameRef, PanopticFrame, SequenceRef

ALL_METRICS = ("stq", "vpq", "pq")  # the default selection
KNOWN_METRICS = ALL_METRICS + TRACKING_METRICS  # HOTA, CLEAR, Identity are opt-in


@dataclass(frozen=True)
class EvaluationSettings:
    """Protocol choices of one evaluation that are not properties of the dataset."""

    matching: MatchingMode = MatchingMode.THING_STUFF_HUNGARIAN
    pseudo_things: tuple[int, ...] | None = None  # None: classes that carry instance ids
    metrics: tuple[str, ...] = ALL_METRICS
    vpq_windows: tuple[int, ...] = (1, 2, 3, 4)
    count_void_column: bool = True  # DeepLab2: predicted void on labelled pixels is an IoU-0 class

    def __post_init__(self) -> None:
        unknown = set(self.metrics) - set(KNOWN_METRICS)
        if unknown:
            raise VpsbenchError(f"unknown metrics {sorted(unknown)}; known: {list(KNOWN_METRICS)}")


@dataclass(frozen=True)
class EvaluationJob:
    """What to evaluate: a dataset split and a prediction folder (picklable for workers)."""

    dataset: Dataset
    split: str
    predictions: PredictionSource
    #: Under ``--matching none`` predictions hold ground-truth class ids, so an id from this
    #: limit on is an error naming the file, not void pixels (``None``: pseudo-classes, no limit).
    class_limit: int | None = None


@dataclass
class SequenceOutcome:
    """A reduced sequence and the SHA-256 of every prediction file it read."""

    statistics: SequenceStatistics
    file_digests: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class EvaluationResult:
    """All numbers of one evaluation plus what is needed to reproduce them."""

    dataset: str
    split: str
    protocol: dict[str, str]
    label_space: LabelSpace
    settings: EvaluationSettings
    matching: ClassMatching
    stq: STQResult
    vpq: VPQResult | None
    pq: PQResult | None
    num_sequences: int
    num_frames: int
    prediction_format: str
    prediction_digest: str
    seconds: float
    tracking: TrackingResult | None = None  # HOTA/CLEAR/Identity when selected


def reduce_sequence(job: EvaluationJob, sequence: SequenceRef) -> SequenceOutcome:
    """Read every annotated frame of ``sequence`` once and reduce it to its statistics."""
    tables: list[JointHistogram] = []
    digests: dict[str, str] = {}
    for frame in sequence.frames:
        ground_truth = job.dataset.load_ground_truth(job.split, frame)
        prediction, digest = job.predictions.read(frame, ground_truth.shape)
        if job.class_limit is not None:
            _check_class_limit(job, frame, prediction, job.class_limit)
        weights = job.dataset.load_pixel_weights(job.split, frame)
        tables.append(joint_histogram(ground_truth, prediction, weights))
        path = job.predictions.path_of(frame)
        digests[path.relative_to(job.predictions.root).as_posix()] = digest
    names = [frame.name for frame in sequence.frames]
    return SequenceOutcome(SequenceStatistics.from_frames(sequence.name, names, tables), digests)


def _check_class_limit(
    job: EvaluationJob, frame: FrameRef, prediction: PanopticFrame, limit: int
) -> None:
    """A predicted class id at or beyond ``limit`` is an error naming the file and the frame."""
    top = int(prediction.semantic.max(initial=-1))
    if top >= limit:
        raise InputError(
            job.predictions.path_of(frame),
            f"frame {frame.name} has class id {top}, outside the {job.dataset.name} label space "
            f"0..{limit - 1} (--matching none reads ground-truth class ids)",
        )


class FrameTableSpill:
    """Per-frame tables of each sequence, parked on disk until VPQ needs them."""

    _COLUMNS = ("gt_class", "gt_instance", "pred_class", "pred_instance", "pixels", "weight")

    def __init__(self) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="vpsbench-frames-")
        self._count = 0

    def add(self, frames: Sequence[JointHistogram]) -> None:
        """Store one sequence's frame tables (in temporal order)."""
        lengths = np.array([len(frame) for frame in frames], dtype=np.int64)
        columns = [
            np.concatenate([getattr(f, name) for f in frames]) if frames else np.zeros(0)
            for name in self._COLUMNS
        ]
        np.savez(Path(self._folder.name) / f"{self._count}.npz", lengths, *columns)
        self._count += 1

    def __iter__(self) -> Iterator[list[JointHistogram]]:
        for index in range(self._count):
            with np.load(Path(self._folder.name) / f"{index}.npz") as data:
                bounds = np.concatenate([[0], np.cumsum(data["arr_0"])])
                columns = {name: data[f"arr_{i + 1}"] for i, name in enumerate(self._COLUMNS)}
            yield [
                JointHistogram(**{name: col[a:b] for name, col in columns.items()})
                for a, b in itertools.pairwise(bounds)
            ]

    def close(self) -> None:
        self._folder.cleanup()


def _reduce_all(
    job: EvaluationJob,
    sequences: Sequence[SequenceRef],
    workers: int,
) -> Iterator[SequenceOutcome]:
    """Reduce sequences in order, in this process or in a pool of ``workers`` processes."""
    if workers <= 1 or len(sequences) <= 1:
        for sequence in sequences:
            yield reduce_sequence(job, sequence)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(reduce_sequence, [job] * len(sequences), sequences)


def select_sequences(
    available: Sequence[SequenceRef], wanted: Sequence[str] | None, dataset: str
) -> list[SequenceRef]:
    """The sequences to evaluate: all, or the named subset (unknown names are an error)."""
    if not wanted:
        return list(available)
    by_name = {sequence.name: sequence for sequence in available}
    missing = [name for name in wanted if name not in by_name]
    if missing:
        raise VpsbenchError(f"{dataset} has no sequence {', '.join(missing)}")
    return [by_name[name] for name in wanted]


def check_official_split(dataset: Dataset, split: str, available: Sequence[SequenceRef]) -> None:
    """Refuse to score a split that is not the official one, so no partial copy scores silently.

    Every official sequence (the loader's :meth:`~Dataset.official_split`, the list ``datasets
    verify`` checks) must be there with all its annotated frames, and nothing else; a deliberate
    subset is named with ``--sequences``. Loaders without a fixed list are not checked.
    """
    official = dataset.official_split(split)
    if official is None:
        return
    where = f"{dataset.name} {split}"
    hint = "evaluate the whole official split, or name the sequences to score with --sequences"
    on_disk = {dataset.official_name(sequence.name): sequence for sequence in available}
    missing = [name for name in official if name not in on_disk]
    if missing:
        raise InputError(
            dataset.root,
            f"{where} lacks {len(missing)} of its {len(official)} official sequences "
            f"({_name_list(missing)}); {hint}",
        )
    strangers = [sequence.name for name, sequence in on_disk.items() if name not in official]
    if strangers:
        raise InputError(
            dataset.root,
            f"{where} holds sequences that are not official ({_name_list(strangers)}); "
            "remove them, or name the sequences to score with --sequences",
        )
    for name, sequence in on_disk.items():
        if len(sequence.frames) != official[name]:
            raise InputError(
                dataset.root,
                f"{where} sequence {sequence.name} has {len(sequence.frames)} annotated frames, "
                f"the official sequence has {official[name]}; {hint}",
            )


def _name_list(names: Sequence[str], limit: int = 5) -> str:
    """``a, b, c … (9 in all)`` for a one-line message."""
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} … ({len(names)} in all)"


def pseudo_thing_mask(
    joint: JointHistogram, num_pred_classes: int, explicit: Sequence[int] | None
) -> np.ndarray:
    """Which pseudo-classes are things: the given set, or those with any instance pixel."""
    mask = np.zeros(num_pred_classes, dtype=bool)
    if explicit is not None:
        mask[[c for c in explicit if 0 <= c < num_pred_classes]] = True
        return mask
    carries = (joint.pred_instance > 0) & (joint.pred_class >= 0)
    mask[np.unique(joint.pred_class[carries])] = True
    return mask


def _within_label_space(job: EvaluationJob, label_space: LabelSpace) -> EvaluationJob:
    """The job that refuses predicted class ids beyond ``label_space`` (``--matching none``)."""
    return dataclasses.replace(job, class_limit=label_space.num_classes)


def evaluate(
    job: EvaluationJob,
    settings: EvaluationSettings | None = None,
    *,
    sequences: Sequence[str] | None = None,
    workers: int = 1,
    on_sequence: Callable[[SequenceStatistics], None] | None = None,
) -> EvaluationResult:
    """Evaluate a prediction folder on a dataset split under the unsupervised protocol."""
    settings = settings or EvaluationSettings()
    started = time.perf_counter()
    label_space = job.dataset.label_space()
    available = job.dataset.sequences(job.split)
    if not sequences:
        check_official_split(job.dataset, job.split, available)
    selected = select_sequences(available, sequences, job.dataset.name)
    if not selected:
        raise InputError(job.dataset.root, f"split {job.split!r} has no annotated frames")
    if settings.matching is MatchingMode.NONE:
        job = _within_label_space(job, label_space)

    spill = FrameTableSpill()
    try:
        summaries: list[tuple[str, JointHistogram, int]] = []
        digests: dict[str, str] = {}
        for outcome in _reduce_all(job, selected, workers):
            statistics = outcome.statistics
            summaries.append((statistics.name, statistics.joint, statistics.num_frames))
            digests.update(outcome.file_digests)
            spill.add(statistics.frames)
            if on_sequence is not None:
                on_sequence(statistics)

        split_joint = JointHistogram.merge(table for _, table, _ in summaries)
        num_pred = int(split_joint.pred_class.max(initial=-1)) + 1
        if job.predictions.num_classes is not None:
            num_pred = max(num_pred, job.predictions.num_classes)
        if settings.matching is MatchingMode.NONE:
            num_pred = max(num_pred, label_space.num_classes)
        gt_classes = label_space.evaluated_classes
        matching = match_pseudo_classes(
            split_joint.pseudo_class_overlap(num_pred, gt_classes),
            pseudo_thing_mask(split_joint, num_pred, settings.pseudo_things),
            gt_classes,
            label_space.evaluated_things,
            settings.matching,
        )
        target_is_thing = np.zeros(max(256, label_space.num_classes), dtype=bool)
        target_is_thing[list(label_space.thing_classes)] = True

        def relabel(table: JointHistogram) -> JointHistogram:
            return table.relabel_predictions(matching.target, target_is_thing)

        stq = segmentation_and_tracking_quality(
            ((name, relabel(table), n) for name, table, n in summaries),
            label_space,
            settings.count_void_column,
        )
        vpq = None
        if "vpq" in settings.metrics:
            mapped_videos = ([relabel(f) for f in frames] for frames in spill)
            vpq = video_panoptic_quality(mapped_videos, label_space, settings.vpq_windows)
        pq = None
        if "pq" in settings.metrics:
            mapped_frames = (relabel(f) for frames in spill for f in frames)
            pq = panoptic_quality(mapped_frames, label_space)
        tracking = None
        if set(settings.metrics) & set(TRACKING_METRICS):
            names = [name for name, _, _ in summaries]
            mapped_sequences = ([relabel(f) for f in frames] for frames in spill)
            tracking = tracking_quality(
                zip(names, mapped_sequences, strict=True), label_space, settings.metrics
            )
    finally:
        spill.close()

    return EvaluationResult(
        dataset=job.dataset.name,
        split=job.split,
        protocol=dict(job.dataset.protocol),
        label_space=label_space,
        settings=settings,
        matching=matching,
        stq=stq,
        vpq=vpq,
        pq=pq,
        num_sequences=len(summaries),
        num_frames=sum(n for _, _, n in summaries),
        prediction_format=str(job.predictions.format),
        prediction_digest=manifest_digest(digests),
        seconds=time.perf_counter() - started,
        tracking=tracking,
    )
