"""CLEAR MOT metrics (Bernardin & Stiefelhagen 2008) of mask tracks, with TrackEval's definitions.

Per frame, detections with IoU ≥ 0.5 are matched by the Hungarian algorithm, first keeping the
pairs that continue the previous frame's matches and then maximising the summed IoU. An identity
switch is a match of a ground-truth track to another predicted track than at its last match (any
number of frames earlier); a fragmentation is each resumption of a track's matching after a gap.
MOTA = (TP − FP − IDSW) / |GT|, MOTP = mean IoU of the matches, sMOTA = (Σ IoU − FP − IDSW) /
|GT|. With masks these are MOTSA, MOTSP and sMOTSA of Voigtlaender et al. (CVPR 2019).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
from scipy.optimize import linear_sum_assignment

from vpsbench.metrics.detections import EPS, MATCH_THRESHOLD, ClassTracks

#: Integer counts and ratios, in TrackEval's order.
COUNT_FIELDS = ("CLR_TP", "CLR_FN", "CLR_FP", "IDSW", "MT", "PT", "ML", "Frag", "CLR_Frames")
SCORE_FIELDS = (
    "MOTA", "MOTP", "MODA", "CLR_Re", "CLR_Pr", "MTR", "PTR", "MLR", "sMOTA", "CLR_F1",
    "FP_per_frame", "MOTAL",
)  # fmt: skip
#: Mask names of the same numbers (MOTS, Voigtlaender et al. 2019).
MASK_ALIASES = {"MOTSA": "MOTA", "MOTSP": "MOTP", "sMOTSA": "sMOTA"}


@dataclass(frozen=True)
class CLEARCounts:
    """The additive state of CLEAR of one class over some sequences."""

    tp: int = 0
    fn: int = 0
    fp: int = 0
    idsw: int = 0
    mt: int = 0
    pt: int = 0
    ml: int = 0
    frag: int = 0
    frames: int = 0  # frames of sequences with both kinds of detection (as TrackEval counts)
    iou_sum: float = 0.0

    def __add__(self, other: CLEARCounts) -> CLEARCounts:
        return CLEARCounts(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        )

    def scores(self) -> dict[str, float]:
        """Every CLEAR number (scores and counts) from the counts."""
        gt = max(1.0, self.tp + self.fn)
        tracks = max(1.0, self.mt + self.pt + self.ml)
        log_idsw = float(np.log10(self.idsw)) if self.idsw > 0 else 0.0
        values = {
            "MOTA": (self.tp - self.fp - self.idsw) / gt,
            "MOTP": self.iou_sum / max(1.0, self.tp),
            "MODA": (self.tp - self.fp) / gt,
            "CLR_Re": self.tp / gt,
            "CLR_Pr": self.tp / max(1.0, self.tp + self.fp),
            "MTR": self.mt / tracks,
            "PTR": self.pt / tracks,
            "MLR": self.ml / tracks,
            "sMOTA": (self.iou_sum - self.fp - self.idsw) / gt,
            "CLR_F1": self.tp / max(1.0, self.tp + 0.5 * self.fn + 0.5 * self.fp),
            "FP_per_frame": self.fp / max(1.0, self.frames),
            "MOTAL": (self.tp - self.fp - log_idsw) / gt,
        }
        counts = (self.tp, self.fn, self.fp, self.idsw, self.mt, self.pt, self.ml, self.frag)
        values |= {name: float(v) for name, v in zip(COUNT_FIELDS, counts, strict=False)}
        values["CLR_Frames"] = float(self.frames)
        return values


def sequence_scores(counts: CLEARCounts) -> dict[str, float]:
    """The scores of one sequence: as :meth:`CLEARCounts.scores`, but with TrackEval's values for
    a sequence without ground truth or without predictions (ratios 0, MLR 1)."""
    values = counts.scores()
    if counts.tp + counts.fn > 0 and counts.tp + counts.fp > 0:
        return values
    return values | dict.fromkeys(SCORE_FIELDS, 0.0) | {"MLR": 1.0}


def class_average(per_class: Sequence[dict[str, float]]) -> dict[str, float]:
    """TrackEval's class average: scores averaged over classes, counts summed."""
    if not per_class:
        return CLEARCounts().scores()
    values = {name: float(np.mean([s[name] for s in per_class])) for name in SCORE_FIELDS}
    values |= {name: float(sum(s[name] for s in per_class)) for name in COUNT_FIELDS}
    return values


def with_mask_aliases(values: dict[str, float]) -> dict[str, float]:
    """Add MOTSA/MOTSP/sMOTSA (the same numbers under the names MOTS papers use)."""
    return values | {alias: values[name] for alias, name in MASK_ALIASES.items()}


def clear_counts(tracks: ClassTracks) -> CLEARCounts:
    """The CLEAR counts of one class in one sequence."""
    if tracks.num_pred_dets == 0:
        return CLEARCounts(fn=tracks.num_gt_dets, ml=tracks.num_gt_ids)
    if tracks.num_gt_dets == 0:
        return CLEARCounts(fp=tracks.num_pred_dets)

    num_gt = tracks.num_gt_ids
    present = np.zeros(num_gt)  # frames in which each gt track exists
    matched = np.zeros(num_gt)  # frames in which it is matched
    starts = np.zeros(num_gt)  # times its matching (re)starts
    last_match = np.full(num_gt, np.nan)  # predicted id at its last match, ever (for IDSW)
    previous = np.full(num_gt, np.nan)  # predicted id matched in the previous frame
    tp = fn = fp = idsw = 0
    iou_sum = 0.0
    for gt_ids, pred_ids, similarity in zip(
        tracks.gt_ids, tracks.pred_ids, tracks.similarity, strict=True
    ):
        if gt_ids.size == 0:
            fp += pred_ids.size
            continue
        if pred_ids.size == 0:
            fn += gt_ids.size
            present[gt_ids] += 1
            continue
        continues = pred_ids[None, :] == previous[gt_ids][:, None]
        score = 1000.0 * continues + similarity
        score[similarity < MATCH_THRESHOLD - EPS] = 0.0
        rows, cols = linear_sum_assignment(-score)
        real = score[rows, cols] > EPS
        rows, cols = rows[real], cols[real]
        gt_matched, pred_matched = gt_ids[rows], pred_ids[cols]

        before = last_match[gt_matched]
        idsw += int(np.sum(~np.isnan(before) & (pred_matched != before)))
        present[gt_ids] += 1
        matched[gt_matched] += 1
        was_untracked = np.isnan(previous)
        last_match[gt_matched] = pred_matched
        previous[:] = np.nan
        previous[gt_matched] = pred_matched
        starts += was_untracked & ~np.isnan(previous)

        tp += rows.size
        fn += gt_ids.size - rows.size
        fp += pred_ids.size - rows.size
        iou_sum += float(similarity[rows, cols].sum())

    ratio = matched[present > 0] / present[present > 0]
    mostly = int(np.sum(ratio > 0.8))
    partly = int(np.sum(ratio >= 0.2)) - mostly
    return CLEARCounts(
        tp=tp,
        fn=fn,
        fp=fp,
        idsw=idsw,
        mt=mostly,
        pt=partly,
        ml=num_gt - mostly - partly,
        frag=int(np.sum(starts[starts > 0] - 1)),
        frames=tracks.num_frames,
        iou_sum=iou_sum,
    )
