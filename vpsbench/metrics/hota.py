"""HOTA (Luiten et al., IJCV 2021) of mask tracks, with TrackEval's definitions and combinations.

For each localisation threshold α ∈ {0.05, 0.10, …, 0.95} detections are matched per frame by the
Hungarian algorithm on (global alignment of the two tracks) × IoU, keeping pairs with IoU ≥ α.
Then DetA = TP / (TP + FN + FP), AssA = 1/TP Σ_TP A(c) with A(c) the track-pair Jaccard
TPA / (TPA + FPA + FNA), HOTA = sqrt(DetA · AssA), and LocA the mean IoU of the matches; the
reported numbers are means over α. Sequences combine by summing the counts (AssA, AssRe, AssPr
and LocA weighted by TP); classes combine by TrackEval's class average (means of the per-class
values) and detection average (summed counts).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

from vpsbench.metrics.detections import EPS, ClassTracks

Float64Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: The 19 localisation thresholds α (as TrackEval builds them, so that comparisons agree exactly).
ALPHAS: Float64Array = np.arange(0.05, 0.99, 0.05)

#: Score fields that are arrays over α; their reported value is the mean over α.
ARRAY_FIELDS = ("HOTA", "DetA", "AssA", "DetRe", "DetPr", "AssRe", "AssPr", "LocA", "OWTA")


@dataclass(frozen=True, eq=False)
class HOTACounts:
    """The additive state of HOTA: per-α TP/FN/FP, summed match IoU and association sums."""

    tp: Float64Array
    fn: Float64Array
    fp: Float64Array
    iou_sum: Float64Array
    ass_a_sum: Float64Array  # Σ over matched pairs of their track-pair Jaccard
    ass_re_sum: Float64Array
    ass_pr_sum: Float64Array

    @classmethod
    def zeros(cls) -> HOTACounts:
        return cls(*(np.zeros(ALPHAS.size) for _ in range(7)))

    def __add__(self, other: HOTACounts) -> HOTACounts:
        return HOTACounts(
            self.tp + other.tp,
            self.fn + other.fn,
            self.fp + other.fp,
            self.iou_sum + other.iou_sum,
            self.ass_a_sum + other.ass_a_sum,
            self.ass_re_sum + other.ass_re_sum,
            self.ass_pr_sum + other.ass_pr_sum,
        )

    def scores(self) -> HOTAScores:
        """HOTA and its sub-metrics per α from the counts."""
        tp = self.tp
        det_re = tp / np.maximum(1.0, tp + self.fn)
        det_pr = tp / np.maximum(1.0, tp + self.fp)
        det_a = tp / np.maximum(1.0, tp + self.fn + self.fp)
        ass_a = self.ass_a_sum / np.maximum(1.0, tp)
        loc_a = np.maximum(1e-10, self.iou_sum) / np.maximum(1e-10, tp)
        return HOTAScores(
            arrays={
                "HOTA": np.sqrt(det_a * ass_a),
                "DetA": det_a,
                "AssA": ass_a,
                "DetRe": det_re,
                "DetPr": det_pr,
                "AssRe": self.ass_re_sum / np.maximum(1.0, tp),
                "AssPr": self.ass_pr_sum / np.maximum(1.0, tp),
                "LocA": loc_a,
                "OWTA": np.sqrt(det_re * ass_a),
            },
            tp=tp,
            fn=self.fn,
            fp=self.fp,
            hota_loc_a_0=float(np.sqrt(det_a[0] * ass_a[0]) * loc_a[0]),
        )


@dataclass(frozen=True, eq=False)
class HOTAScores:
    """HOTA sub-metrics as arrays over α, and the TP/FN/FP counts behind them."""

    arrays: dict[str, Float64Array]
    tp: Float64Array
    fn: Float64Array
    fp: Float64Array
    hota_loc_a_0: float  # HOTA · LocA at α = 0.05 (class-averaged as a product, not recomputed)

    def summary(self) -> dict[str, float]:
        """Each sub-metric averaged over α, plus HOTA(0), LocA(0), HOTALocA(0) at α = 0.05."""
        values = {name: float(np.mean(self.arrays[name])) for name in ARRAY_FIELDS}
        values["HOTA(0)"] = float(self.arrays["HOTA"][0])
        values["LocA(0)"] = float(self.arrays["LocA"][0])
        values["HOTALocA(0)"] = self.hota_loc_a_0
        return values

    def per_alpha(self) -> dict[str, list[float]]:
        """Every sub-metric and the HOTA_TP/FN/FP counts at each α (as lists, for JSON)."""
        arrays = dict(self.arrays) | {"HOTA_TP": self.tp, "HOTA_FN": self.fn, "HOTA_FP": self.fp}
        return {name: [float(v) for v in values] for name, values in arrays.items()}

    @classmethod
    def class_average(cls, per_class: Sequence[HOTAScores]) -> HOTAScores:
        """TrackEval's class average: means of the per-class arrays, summed counts."""
        if not per_class:
            return HOTACounts.zeros().scores()
        return cls(
            arrays={
                name: np.mean([s.arrays[name] for s in per_class], axis=0) for name in ARRAY_FIELDS
            },
            tp=np.sum([s.tp for s in per_class], axis=0),
            fn=np.sum([s.fn for s in per_class], axis=0),
            fp=np.sum([s.fp for s in per_class], axis=0),
            hota_loc_a_0=float(np.mean([s.hota_loc_a_0 for s in per_class])),
        )


def hota_counts(tracks: ClassTracks) -> HOTACounts:
    """The HOTA counts of one class in one sequence."""
    if tracks.num_pred_dets == 0 or tracks.num_gt_dets == 0:
        fn = np.full(ALPHAS.size, float(tracks.num_gt_dets))
        fp = np.full(ALPHAS.size, float(tracks.num_pred_dets))
        zero = np.zeros(ALPHAS.size)
        return HOTACounts(zero, fn, fp, zero, zero, zero, zero)

    num_gt, num_pred = tracks.num_gt_ids, tracks.num_pred_ids
    frames = list(zip(tracks.gt_ids, tracks.pred_ids, tracks.similarity, strict=True))
    # Global alignment: soft co-occurrence of every (gt track, predicted track) pair, kept
    # sparse (pair key = gt · num_pred + pred) since unsupervised trackers emit many ids.
    gt_count = np.zeros(num_gt)
    pred_count = np.zeros(num_pred)
    pair_keys: list[IntArray] = []
    pair_ratios: list[Float64Array] = []
    for gt_ids, pred_ids, similarity in frames:
        denominator = similarity.sum(0)[None, :] + similarity.sum(1)[:, None] - similarity
        ratio = np.zeros_like(similarity)
        positive = denominator > EPS
        ratio[positive] = similarity[positive] / denominator[positive]
        rows, cols = np.nonzero(ratio)
        pair_keys.append(gt_ids[rows] * num_pred + pred_ids[cols])
        pair_ratios.append(ratio[rows, cols])
        gt_count[gt_ids] += 1
        pred_count[pred_ids] += 1
    keys, inverse = np.unique(np.concatenate(pair_keys), return_inverse=True)
    overlap = np.bincount(inverse.reshape(-1), weights=np.concatenate(pair_ratios))
    overlap = overlap[: keys.size]
    alignment = overlap / (gt_count[keys // num_pred] + pred_count[keys % num_pred] - overlap)

    def alignment_of(pairs: IntArray) -> Float64Array:
        """Global alignment of pair keys (0 for pairs that never overlap)."""
        where = np.minimum(np.searchsorted(keys, pairs), max(keys.size - 1, 0))
        found = keys[where] == pairs if keys.size else np.zeros(pairs.shape, dtype=bool)
        return np.where(found, alignment[where] if keys.size else 0.0, 0.0)

    tp, fn, fp, iou_sum = (np.zeros(ALPHAS.size) for _ in range(4))
    matched_keys: list[list[IntArray]] = [[] for _ in ALPHAS]
    for gt_ids, pred_ids, similarity in frames:
        if gt_ids.size == 0 or pred_ids.size == 0:
            fn += gt_ids.size
            fp += pred_ids.size
            continue
        score = alignment_of(gt_ids[:, None] * num_pred + pred_ids[None, :]) * similarity
        rows, cols = linear_sum_assignment(-score)
        matched_iou = similarity[rows, cols]
        matched_pairs = gt_ids[rows] * num_pred + pred_ids[cols]
        for a, alpha in enumerate(ALPHAS):
            kept = matched_iou >= alpha - EPS
            hits = int(kept.sum())
            tp[a] += hits
            fn[a] += gt_ids.size - hits
            fp[a] += pred_ids.size - hits
            if hits:
                iou_sum[a] += matched_iou[kept].sum()
                matched_keys[a].append(matched_pairs[kept])

    # Track-pair Jaccard, recall and precision of every matched pair, summed over matches.
    sums = np.zeros((3, ALPHAS.size))
    for a, pairs in enumerate(matched_keys):
        if not pairs:
            continue
        unique, matches = np.unique(np.concatenate(pairs), return_counts=True)
        gt_len, pred_len = gt_count[unique // num_pred], pred_count[unique % num_pred]
        sums[0, a] = np.sum(matches * matches / np.maximum(1.0, gt_len + pred_len - matches))
        sums[1, a] = np.sum(matches * matches / np.maximum(1.0, gt_len))
        sums[2, a] = np.sum(matches * matches / np.maximum(1.0, pred_len))
    return HOTACounts(tp, fn, fp, iou_sum, sums[0], sums[1], sums[2])
