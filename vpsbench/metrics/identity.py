"""Identity metrics IDF1, IDP, IDR (Ristani et al. 2016) of mask tracks, as TrackEval computes them.

Ground-truth and predicted tracks are matched one-to-one over the whole sequence (a track may stay
unmatched) so as to minimise IDFN + IDFP, where a pair's detections count as identity true
positives in the frames in which their IoU is ≥ 0.5. IDF1 = IDTP / (IDTP + ½ IDFN + ½ IDFP).
Sequences and classes (detection average) combine by summing the counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

from vpsbench.metrics.detections import MATCH_THRESHOLD, ClassTracks

SCORE_FIELDS = ("IDF1", "IDR", "IDP")
COUNT_FIELDS = ("IDTP", "IDFN", "IDFP")


@dataclass(frozen=True)
class IdentityCounts:
    """The additive state of the identity metrics: IDTP, IDFN, IDFP."""

    idtp: int = 0
    idfn: int = 0
    idfp: int = 0

    def __add__(self, other: IdentityCounts) -> IdentityCounts:
        return IdentityCounts(
            self.idtp + other.idtp, self.idfn + other.idfn, self.idfp + other.idfp
        )

    def scores(self) -> dict[str, float]:
        """IDF1, IDR, IDP and the counts."""
        return {
            "IDF1": self.idtp / max(1.0, self.idtp + 0.5 * self.idfp + 0.5 * self.idfn),
            "IDR": self.idtp / max(1.0, self.idtp + self.idfn),
            "IDP": self.idtp / max(1.0, self.idtp + self.idfp),
            "IDTP": float(self.idtp),
            "IDFN": float(self.idfn),
            "IDFP": float(self.idfp),
        }


def class_average(per_class: Sequence[dict[str, float]]) -> dict[str, float]:
    """TrackEval's class average: scores averaged over classes, counts summed."""
    if not per_class:
        return IdentityCounts().scores()
    values = {name: float(np.mean([s[name] for s in per_class])) for name in SCORE_FIELDS}
    values |= {name: float(sum(s[name] for s in per_class)) for name in COUNT_FIELDS}
    return values


def identity_counts(tracks: ClassTracks) -> IdentityCounts:
    """IDTP, IDFN and IDFP of one class in one sequence (global min-cost track assignment)."""
    if tracks.num_pred_dets == 0:
        return IdentityCounts(idfn=tracks.num_gt_dets)
    if tracks.num_gt_dets == 0:
        return IdentityCounts(idfp=tracks.num_pred_dets)

    num_pred = tracks.num_pred_ids
    pair_keys: list[npt.NDArray[np.int64]] = []
    gt_total = pred_total = 0
    for gt_ids, pred_ids, similarity in zip(
        tracks.gt_ids, tracks.pred_ids, tracks.similarity, strict=True
    ):
        rows, cols = np.nonzero(similarity >= MATCH_THRESHOLD)
        pair_keys.append(gt_ids[rows] * num_pred + pred_ids[cols])
        gt_total += gt_ids.size
        pred_total += pred_ids.size
    # Assigning track g to track p costs IDFN + IDFP = |g| + |p| − 2·(frames both match), and
    # leaving both unmatched costs |g| + |p|: the optimum (TrackEval's extended square problem)
    # is the matching of maximal co-matched frames, solved only among tracks that co-match at all.
    keys, counts = np.unique(np.concatenate(pair_keys), return_counts=True)
    idtp = 0
    if keys.size:
        gt_rows, gt_index = np.unique(keys // num_pred, return_inverse=True)
        pred_cols, pred_index = np.unique(keys % num_pred, return_inverse=True)
        co_matched = np.zeros((gt_rows.size, pred_cols.size))
        co_matched[gt_index.reshape(-1), pred_index.reshape(-1)] = counts
        rows, cols = linear_sum_assignment(co_matched, maximize=True)
        idtp = int(co_matched[rows, cols].sum())
    return IdentityCounts(idtp=idtp, idfn=gt_total - idtp, idfp=pred_total - idtp)
