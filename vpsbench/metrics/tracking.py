"""HOTA, CLEAR and Identity of a split: per thing class, class-averaged and detection-averaged.

Each (sequence, thing class) is scored on its own (:mod:`vpsbench.metrics.detections` gives the
per-frame detections and IoUs from the mapped frame tables); sequences combine by summing counts
(TrackEval's ``COMBINED_SEQ``) and classes combine in TrackEval's two ways: the class average
(``cls_comb_cls_av``: mean of the per-class scores over every evaluated thing class, empty ones
included, counts summed) and the detection average (``cls_comb_det_av``: summed counts). Matching
never crosses classes, as in TrackEval. The class average is the headline number.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from vpsbench.datasets.base import LabelSpace
from vpsbench.metrics import clear, identity
from vpsbench.metrics.clear import CLEARCounts, clear_counts
from vpsbench.metrics.detections import class_tracks
from vpsbench.metrics.hota import HOTACounts, HOTAScores, hota_counts
from vpsbench.metrics.identity import IdentityCounts, identity_counts
from vpsbench.statistics import JointHistogram

TRACKING_METRICS = ("hota", "clear", "identity")

_C = TypeVar("_C", HOTACounts, CLEARCounts, IdentityCounts)


@dataclass(frozen=True)
class TrackingCounts:
    """The additive state of the selected tracking metrics (``None``: not selected)."""

    hota: HOTACounts | None = None
    clear: CLEARCounts | None = None
    identity: IdentityCounts | None = None

    def __add__(self, other: TrackingCounts) -> TrackingCounts:
        return TrackingCounts(
            _add(self.hota, other.hota),
            _add(self.clear, other.clear),
            _add(self.identity, other.identity),
        )

    def scores(self, sequence: bool = False) -> TrackingScores:
        """Scores from the counts (``sequence``: of one sequence, TrackEval's empty-case values)."""
        clear_scores = None
        if self.clear is not None:
            clear_scores = (clear.sequence_scores if sequence else CLEARCounts.scores)(self.clear)
        return TrackingScores(
            hota=None if self.hota is None else self.hota.scores(),
            clear=None if clear_scores is None else clear.with_mask_aliases(clear_scores),
            identity=None if self.identity is None else self.identity.scores(),
        )


def _add(first: _C | None, second: _C | None) -> _C | None:
    """Sum two optional counts (a metric that is not selected stays ``None``)."""
    if first is None:
        return second
    if second is None:
        return first
    return first + second


@dataclass(frozen=True)
class TrackingScores:
    """Numbers of the selected metrics: HOTA arrays over α, CLEAR and Identity by field name."""

    hota: HOTAScores | None = None
    clear: dict[str, float] | None = None
    identity: dict[str, float] | None = None

    def summary(self) -> dict[str, float]:
        """All numbers in one flat dict (HOTA sub-metrics averaged over α)."""
        values: dict[str, float] = {}
        if self.hota is not None:
            values |= self.hota.summary()
        values |= self.clear or {}
        values |= self.identity or {}
        return values


@dataclass(frozen=True)
class TrackingResult:
    """Tracking metrics of a split over the evaluated thing classes."""

    metrics: tuple[str, ...]
    per_class: dict[int, TrackingScores]
    class_averaged: TrackingScores
    detection_averaged: TrackingScores
    per_sequence: dict[str, dict[int, TrackingScores]] = field(default_factory=dict)


def sequence_counts(
    frames: Sequence[JointHistogram],
    class_id: int,
    label_space: LabelSpace,
    metrics: Sequence[str],
) -> TrackingCounts:
    """The counts of the selected metrics for one class of one sequence (mapped frame tables)."""
    tracks = class_tracks(frames, class_id, label_space.ignore_label)
    return TrackingCounts(
        hota=hota_counts(tracks) if "hota" in metrics else None,
        clear=clear_counts(tracks) if "clear" in metrics else None,
        identity=identity_counts(tracks) if "identity" in metrics else None,
    )


def class_average(per_class: Sequence[TrackingScores], metrics: Sequence[str]) -> TrackingScores:
    """TrackEval's class average of the per-class scores."""
    return TrackingScores(
        hota=HOTAScores.class_average([s.hota for s in per_class if s.hota is not None])
        if "hota" in metrics
        else None,
        clear=clear.with_mask_aliases(
            clear.class_average([s.clear for s in per_class if s.clear is not None])
        )
        if "clear" in metrics
        else None,
        identity=identity.class_average([s.identity for s in per_class if s.identity is not None])
        if "identity" in metrics
        else None,
    )


def tracking_quality(
    sequences: Iterable[tuple[str, Sequence[JointHistogram]]],
    label_space: LabelSpace,
    metrics: Sequence[str] = TRACKING_METRICS,
) -> TrackingResult:
    """HOTA/CLEAR/Identity from ``(name, mapped frame tables in temporal order)`` per sequence."""
    selected = tuple(m for m in TRACKING_METRICS if m in metrics)
    classes = label_space.evaluated_things
    totals = {c: TrackingCounts() for c in classes}
    per_sequence: dict[str, dict[int, TrackingScores]] = {}
    for name, frames in sequences:
        scores: dict[int, TrackingScores] = {}
        for c in classes:
            counts = sequence_counts(frames, c, label_space, selected)
            totals[c] = totals[c] + counts
            scores[c] = counts.scores(sequence=True)
        per_sequence[name] = scores
    per_class = {c: totals[c].scores() for c in classes}
    detections = TrackingCounts()
    for c in classes:
        detections = detections + totals[c]
    if not classes:
        detections = TrackingCounts(
            hota=HOTACounts.zeros() if "hota" in selected else None,
            clear=CLEARCounts() if "clear" in selected else None,
            identity=IdentityCounts() if "identity" in selected else None,
        )
    return TrackingResult(
        metrics=selected,
        per_class=per_class,
        class_averaged=class_average(list(per_class.values()), selected),
        detection_averaged=detections.scores(),
        per_sequence=per_sequence,
    )
