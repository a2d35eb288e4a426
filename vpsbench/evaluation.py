"""The streaming evaluator: dataset → frames → per-sequence statistics → merge → matching → metrics.

Each sequence is read once and reduced to its joint histograms (:mod:`vpsbench.statistics`);
sequences are independent, so they can be reduced anywhere (:mod:`vpsbench.executors`: in
process, a process pool or a Ray cluster) in any order and merged in sequence order, which makes
the numbers identical whatever the worker count. The statistics are written to a statistics file
(:mod:`vpsbench.stats_file`; a temporary one unless ``save_stats`` keeps it), so memory does not
grow with the number of frames. Only then, with the overlaps of the whole split known, are
pseudo-classes matched to ground-truth classes and the metrics computed from the (tiny)
statistics by :func:`score`, the same function ``vpsbench rescore`` runs on saved files.
"""

from __future__ import annotations

import dataclasses
import functools
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from vpsbench.datasets.base import Dataset, LabelSpace
from vpsbench.errors import InputError, VpsbenchError
from vpsbench.executors import ExecutorKind, ExecutorSpec, executor_spec, ordered_map
from vpsbench.matching import ClassMatching, MatchingMode, match_pseudo_classes
from vpsbench.metrics.pq import PQCounts, PQResult, summarize_pq, window_pq_counts
from vpsbench.metrics.stq import STQResult, segmentation_and_tracking_quality
from vpsbench.metrics.tracking import TRACKING_METRICS, TrackingResult, tracking_quality
from vpsbench.metrics.vpq import VPQResult, VPQTotals
from vpsbench.predictions import PredictionSource
from vpsbench.statistics import (
    CodedFrame,
    JointHistogram,
    SequenceStatistics,
    joint_histogram,
    joint_histogram_coded,
    relabel_frames,
)
from vpsbench.stats_file import SplitStatistics, StatsFile, StatsHeader, StatsWriter
from vpsbench.video import FrameRef, LabelMap, PanopticFrame, SequenceRef

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
        table, digest = frame_histogram(job, frame)
        tables.append(table)
        path = job.predictions.path_of(frame)
        digests[path.relative_to(job.predictions.root).as_posix()] = digest
    names = [frame.name for frame in sequence.frames]
    return SequenceOutcome(SequenceStatistics.from_frames(sequence.name, names, tables), digests)


def frame_histogram(job: EvaluationJob, frame: FrameRef) -> tuple[JointHistogram, str]:
    """One frame's joint histogram and its prediction file's SHA-256.

    When the ground truth and the prediction both come as per-pixel codes (STEP PNGs), the
    histogram is built from the codes (:func:`joint_histogram_coded`: same table, same errors,
    two comparisons a pixel instead of four and no per-pixel decoding); otherwise from frames.
    """
    weights = job.dataset.load_pixel_weights(job.split, frame)
    coded_truth = job.dataset.load_ground_truth_codes(job.split, frame)
    if coded_truth is not None:
        coded = job.predictions.read_codes(frame, coded_truth.shape)
        if coded is not None:
            prediction_codes, digest = coded
            if job.class_limit is not None:
                prediction_codes = _limited(job, frame, prediction_codes, job.class_limit)
            return joint_histogram_coded(coded_truth, prediction_codes, weights), digest
    ground_truth = job.dataset.load_ground_truth(job.split, frame)
    prediction, digest = job.predictions.read(frame, ground_truth.shape)
    if job.class_limit is not None:
        _check_class_limit(job, frame, prediction, job.class_limit)
    return joint_histogram(ground_truth, prediction, weights), digest


def _limited(job: EvaluationJob, frame: FrameRef, codes: CodedFrame, limit: int) -> CodedFrame:
    """``codes`` whose decoder also applies :func:`_check_class_limit` to what it decodes."""

    def decode(values: npt.NDArray[np.uint32]) -> tuple[LabelMap, LabelMap]:
        semantic, instance = codes.decode(values)
        _check_class_limit(job, frame, PanopticFrame(semantic[None], instance[None]), limit)
        return semantic, instance

    return CodedFrame(codes.codes, decode)


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


def _reduce_one(job: EvaluationJob, sequence: SequenceRef) -> SequenceOutcome:
    """:func:`reduce_sequence` with the job first, for :func:`functools.partial` (picklable)."""
    return reduce_sequence(job, sequence)


def _reduce_all(
    job: EvaluationJob,
    sequences: Sequence[SequenceRef],
    executor: ExecutorSpec,
) -> Iterator[SequenceOutcome]:
    """Reduce sequences wherever ``executor`` says; the outcomes come back in sequence order."""
    return ordered_map(functools.partial(_reduce_one, job), sequences, executor)


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
    executor: str | ExecutorKind = ExecutorKind.LOCAL,
    ray_address: str | None = None,
    save_stats: str | Path | None = None,
) -> EvaluationResult:
    """Evaluate a prediction folder on a dataset split under the unsupervised protocol.

    Reduce every sequence (in this process, ``workers`` local processes, or on the Ray cluster
    at ``ray_address``) into a statistics file (``save_stats``, else a temporary one), then
    :func:`score` it: the same scoring ``vpsbench rescore`` runs on saved files.
    """
    settings = settings or EvaluationSettings()
    started = time.perf_counter()
    spec = executor_spec(executor, workers, ray_address)
    label_space = job.dataset.label_space()
    available = job.dataset.sequences(job.split)
    if not sequences:
        check_official_split(job.dataset, job.split, available)
    selected = select_sequences(available, sequences, job.dataset.name)
    if not selected:
        raise InputError(job.dataset.root, f"split {job.split!r} has no annotated frames")
    if settings.matching is MatchingMode.NONE:
        job = _within_label_space(job, label_space)
    official = job.dataset.official_split(job.split)
    header = StatsHeader(
        dataset=job.dataset.name,
        split=job.split,
        protocol=dict(job.dataset.protocol),
        label_space=label_space,
        prediction_format=str(job.predictions.format),
        declared_classes=job.predictions.num_classes,
        count_void_column=settings.count_void_column,
        official=None if official is None else tuple(official),
    )
    position = {sequence.name: index for index, sequence in enumerate(available)}

    with tempfile.TemporaryDirectory(prefix="vpsbench-stats-") as folder:
        path = Path(save_stats) if save_stats is not None else Path(folder) / "stats.npz"
        # Only a file the user keeps is worth an fsync; the temporary one is read back at once.
        with StatsWriter(path, header, durable=save_stats is not None) as writer:
            outcomes = _reduce_all(job, selected, spec)
            for sequence, outcome in zip(selected, outcomes, strict=True):
                statistics = outcome.statistics
                writer.add(
                    statistics,
                    outcome.file_digests,
                    position[sequence.name],
                    job.dataset.official_name(sequence.name),
                )
                if on_sequence is not None:
                    on_sequence(statistics)
        saved = StatsFile(path)
        try:
            return score(
                SplitStatistics(saved.header, [(saved, e) for e in saved.entries]),
                settings,
                started,
            )
        finally:
            saved.close()


def _check_class_limit_of(stats: SplitStatistics, limit: int) -> None:
    """Under ``--matching none`` a saved class id beyond the label space is an error."""
    for source, entry in stats.sources:
        top = int(source.joint(entry).pred_class.max(initial=-1))
        if top >= limit:
            raise InputError(
                source.path,
                f"sequence {entry.name} has class id {top}, outside the {stats.header.dataset} "
                f"label space 0..{limit - 1} (--matching none reads ground-truth class ids)",
            )


def score(
    stats: SplitStatistics,
    settings: EvaluationSettings | None = None,
    started: float | None = None,
) -> EvaluationResult:
    """Match pseudo-classes and compute the metrics from a split's saved statistics.

    The one scoring path of ``evaluate`` and ``rescore``: it reads summed histograms, then
    streams each sequence's frame tables from disk once, for every metric that needs them.
    """
    settings = settings or EvaluationSettings()
    started = time.perf_counter() if started is None else started
    header = stats.header
    label_space = header.label_space
    if settings.matching is MatchingMode.NONE:
        _check_class_limit_of(stats, label_space.num_classes)
    summaries = stats.summaries()
    if not summaries:
        raise VpsbenchError("the statistics hold no sequence")

    split_joint = JointHistogram.merge(table for _, table, _ in summaries)
    num_pred = int(split_joint.pred_class.max(initial=-1)) + 1
    if header.declared_classes is not None:
        num_pred = max(num_pred, header.declared_classes)
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
    # One pass over the frame tables: each sequence is read and relabelled once, and its window
    # counts give VPQ (every window size) and image PQ (the one-frame windows) together.
    vpq_totals = VPQTotals(label_space, settings.vpq_windows) if "vpq" in settings.metrics else None
    image_pq = "pq" in settings.metrics
    window_sizes = (vpq_totals.sizes if vpq_totals else ()) + ((1,) if image_pq else ())
    pq_totals = PQCounts.zeros(label_space.num_classes)

    def mapped_sequences() -> Iterator[tuple[str, list[JointHistogram]]]:
        nonlocal pq_totals
        for (name, _, _), frames in zip(summaries, stats.frame_tables(), strict=True):
            mapped = relabel_frames(frames, matching.target, target_is_thing)
            if window_sizes:
                windows = window_pq_counts(mapped, label_space, window_sizes)
                if vpq_totals is not None:
                    vpq_totals.add(windows)
                for counts in windows[1] if image_pq else ():
                    pq_totals = pq_totals + counts  # frame by frame, as image PQ sums them
            yield name, mapped

    tracking = None
    if set(settings.metrics) & set(TRACKING_METRICS):
        tracking = tracking_quality(mapped_sequences(), label_space, settings.metrics)
    elif window_sizes:
        for _ in mapped_sequences():
            pass
    vpq = vpq_totals.result() if vpq_totals is not None else None
    pq = summarize_pq(pq_totals, label_space) if image_pq else None

    return EvaluationResult(
        dataset=header.dataset,
        split=header.split,
        protocol=dict(header.protocol),
        label_space=label_space,
        settings=settings,
        matching=matching,
        stq=stq,
        vpq=vpq,
        pq=pq,
        num_sequences=len(summaries),
        num_frames=sum(n for _, _, n in summaries),
        prediction_format=header.prediction_format,
        prediction_digest=stats.prediction_digest(),
        seconds=time.perf_counter() - started,
        tracking=tracking,
    )
