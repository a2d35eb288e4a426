"""TrackEval run on the pixel masks of random videos: the oracle of the tracking metric tests.

Every detection is encoded as a pycocotools RLE mask; TrackEval's own KITTI-MOTS reader code
(``KittiMOTS._calculate_similarities`` and ``get_preprocessed_seq_data``, called on an instance
that skips the file-reading constructor) computes the IoUs and removes predictions in the ignore
region (ground-truth void plus the crowd of the evaluated class); then TrackEval's HOTA, CLEAR and
Identity classes score each (sequence, class) and combine them as TrackEval's Evaluator does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from tests.random_videos import Frame
from vpsbench.video import PanopticFrame

trackeval = pytest.importorskip("trackeval", reason="trackeval is not installed (dev extra)")
mask_utils = pytest.importorskip("pycocotools.mask", reason="pycocotools is not installed")

from trackeval.datasets.kitti_mots import KittiMOTS  # noqa: E402
from trackeval.metrics import CLEAR, HOTA, Identity  # noqa: E402

_ID_SPAN = 100_000  # TrackEval wants ids unique per frame across classes: class·span + instance


def _rle(mask: np.ndarray) -> dict[str, Any]:
    encoded: dict[str, Any] = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    encoded["counts"] = encoded["counts"].decode("utf-8")
    return encoded


def _detections(
    frame: PanopticFrame, things: Sequence[int]
) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """Ids (class·span + instance), classes and RLE masks of a frame's thing segments."""
    ids, classes, masks = [], [], []
    for c in things:
        of_class = frame.semantic == c
        for instance in np.unique(frame.instance[of_class]):
            if instance <= 0:
                continue
            ids.append(c * _ID_SPAN + int(instance))
            classes.append(c)
            masks.append(_rle(of_class & (frame.instance == instance)))
    return np.array(ids, dtype=int), np.array(classes, dtype=int), masks


def _reader() -> Any:
    """A KittiMOTS reader without its file-reading constructor (only its methods are used)."""
    reader = KittiMOTS.__new__(KittiMOTS)
    return reader


def preprocessed_sequences(
    video: Sequence[Frame], things: Sequence[int], ignore_label: int, name: str = "seq"
) -> dict[int, dict[str, Any]]:
    """TrackEval's preprocessed data of each thing class of one video."""
    reader = _reader()
    keys = ("gt_ids", "gt_classes", "gt_dets", "tracker_ids", "tracker_classes", "tracker_dets")
    raw: dict[str, Any] = {key: [] for key in (*keys, "similarity_scores")}
    for gt, pred, _ in video:
        gt_ids, gt_classes, gt_dets = _detections(gt, things)
        pred_ids, pred_classes, pred_dets = _detections(pred, things)
        raw["gt_ids"].append(gt_ids)
        raw["gt_classes"].append(gt_classes)
        raw["gt_dets"].append(gt_dets)
        raw["tracker_ids"].append(pred_ids)
        raw["tracker_classes"].append(pred_classes)
        raw["tracker_dets"].append(pred_dets)
        raw["similarity_scores"].append(reader._calculate_similarities(gt_dets, pred_dets))
    raw["num_timesteps"] = len(video)
    raw["seq"] = name
    reader.class_name_to_class_id = {str(c): c for c in things}
    data = {}
    for c in things:
        raw["gt_ignore_region"] = [
            _rle((gt.semantic == ignore_label) | ((gt.semantic == c) & (gt.instance == 0)))
            for gt, _, _ in video
        ]
        data[c] = reader.get_preprocessed_seq_data(raw, str(c))
    return data


def trackeval_scores(
    videos: dict[str, Sequence[Frame]], things: Sequence[int], ignore_label: int
) -> dict[str, Any]:
    """TrackEval's results: ``{class or 'cls_comb_cls_av' / 'cls_comb_det_av': {metric: res}}``
    over the split, and ``per_sequence[name][class][metric]``."""
    metrics = [HOTA(), CLEAR({"PRINT_CONFIG": False}), Identity({"PRINT_CONFIG": False})]
    per_sequence: dict[str, dict[int, dict[str, Any]]] = {}
    for name, video in videos.items():
        data = preprocessed_sequences(video, things, ignore_label, name)
        per_sequence[name] = {
            c: {m.get_name(): m.eval_sequence(data[c]) for m in metrics} for c in things
        }
    combined: dict[Any, dict[str, Any]] = {}
    for c in things:
        combined[c] = {
            m.get_name(): m.combine_sequences(
                {s: per_sequence[s][c][m.get_name()] for s in per_sequence}
            )
            for m in metrics
        }
    combined["cls_comb_cls_av"] = {
        m.get_name(): m.combine_classes_class_averaged(
            {c: combined[c][m.get_name()] for c in things}
        )
        for m in metrics
    }
    combined["cls_comb_det_av"] = {
        m.get_name(): m.combine_classes_det_averaged({c: combined[c][m.get_name()] for c in things})
        for m in metrics
    }
    combined["per_sequence"] = per_sequence
    return combined


def summary(metric: str, res: dict[str, Any]) -> dict[str, float]:
    """TrackEval's summary numbers of one result (array fields averaged over α, as it prints)."""
    if metric == "HOTA":
        fields = [*HOTA().float_array_fields, *HOTA().float_fields]
        return {f: float(np.mean(res[f])) for f in fields}
    if metric == "CLEAR":
        clear = CLEAR({"PRINT_CONFIG": False})
        return {f: float(res[f]) for f in clear.fields if f != "MOTP_sum"}
    identity = Identity({"PRINT_CONFIG": False})
    return {f: float(res[f]) for f in identity.fields}


def assert_matches_trackeval(
    ours: Any, reference: dict[str, Any], metric: str, things: Sequence[int], tolerance: float
) -> int:
    """Every summary number of ``metric`` agrees per class, per sequence and combined.

    ``ours`` is a :class:`~vpsbench.metrics.tracking.TrackingResult`; returns how many numbers
    were compared.
    """
    pairs = [(ours.per_class[c], reference[c], f"class {c}") for c in things]
    pairs += [
        (ours.class_averaged, reference["cls_comb_cls_av"], "class average"),
        (ours.detection_averaged, reference["cls_comb_det_av"], "detection average"),
    ]
    for name, classes in reference["per_sequence"].items():
        pairs += [(ours.per_sequence[name][c], classes[c], f"{name} class {c}") for c in things]
    compared = 0
    for scores, expected, where in pairs:
        flat = scores.summary()
        for field, value in summary(metric, expected[metric]).items():
            assert flat[field] == pytest.approx(value, abs=tolerance), (where, field)
            compared += 1
    return compared
