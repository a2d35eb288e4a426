"""Evaluation results as plain JSON: every number, the mapping, the protocol and provenance."""

from __future__ import annotations

import json
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import vpsbench
from vpsbench.evaluation import EvaluationResult
from vpsbench.formats.atomic import atomic_write_text
from vpsbench.metrics.hota import ALPHAS
from vpsbench.metrics.pq import PQResult
from vpsbench.metrics.tracking import TrackingResult, TrackingScores

#: Tracking numbers repeated at the top of ``metrics`` (class-averaged over thing classes).
TRACKING_HEADLINE = (
    "HOTA", "DetA", "AssA", "LocA", "DetRe", "DetPr", "AssRe", "AssPr",
    "MOTA", "MOTP", "MOTSA", "sMOTSA", "IDSW", "Frag", "IDF1", "IDP", "IDR",
)  # fmt: skip

RESULTS_SCHEMA_VERSION = 1


def _pq_to_dict(result: PQResult, class_names: tuple[str, ...]) -> dict[str, Any]:
    return {
        "PQ": result.pq,
        "SQ": result.sq,
        "RQ": result.rq,
        "PQ_th": result.pq_things,
        "PQ_st": result.pq_stuff,
        "per_class": {
            class_names[c]: {"PQ": v.pq, "SQ": v.sq, "RQ": v.rq, "TP": v.tp, "FP": v.fp, "FN": v.fn}
            for c, v in sorted(result.per_class.items())
        },
    }


def _alpha_arrays(scores: TrackingScores) -> dict[str, list[float]]:
    """HOTA sub-metrics at each α (empty when HOTA was not selected)."""
    return {} if scores.hota is None else scores.hota.per_alpha()


def _tracking_to_dict(tracking: TrackingResult, class_names: tuple[str, ...]) -> dict[str, Any]:
    """HOTA/CLEAR/Identity per thing class, class-averaged, detection-averaged, per sequence."""
    return {
        "metrics": list(tracking.metrics),
        "combination": "class average over evaluated thing classes (TrackEval cls_comb_cls_av)",
        "class_averaged": tracking.class_averaged.summary(),
        "detection_averaged": tracking.detection_averaged.summary(),
        "per_class": {class_names[c]: s.summary() for c, s in sorted(tracking.per_class.items())},
        "per_alpha": {
            "alpha": [float(a) for a in ALPHAS],
            "class_averaged": _alpha_arrays(tracking.class_averaged),
            "detection_averaged": _alpha_arrays(tracking.detection_averaged),
            "per_class": {
                class_names[c]: _alpha_arrays(s) for c, s in sorted(tracking.per_class.items())
            },
        },
        "per_sequence": {
            name: {class_names[c]: s.summary() for c, s in sorted(classes.items())}
            for name, classes in tracking.per_sequence.items()
        },
    }


def result_to_dict(result: EvaluationResult) -> dict[str, Any]:
    """A JSON-ready dict of everything in ``result`` (class ids are named)."""
    names = result.label_space.class_names
    settings = result.settings
    document: dict[str, Any] = {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "vpsbench_version": vpsbench.__version__,
        "dataset": result.dataset,
        "split": result.split,
        "protocol": {
            **result.protocol,
            "label_space": result.label_space.name,
            "matching": str(settings.matching),
            "thing_classes": [names[c] for c in result.label_space.evaluated_things],
            "stuff_classes": [names[c] for c in result.label_space.evaluated_stuff],
            "pseudo_things": [int(c) for c in result.matching.pseudo_things.nonzero()[0]],
            "count_void_column": settings.count_void_column,
        },
        "metrics": {
            "STQ": result.stq.stq,
            "AQ": result.stq.aq,
            "SQ": result.stq.sq,
            "IoU_per_class": {names[c]: v for c, v in sorted(result.stq.iou_per_class.items())},
        },
        "per_sequence": [
            {
                "sequence": s.name,
                "frames": s.num_frames,
                "STQ": s.stq,
                "AQ": s.aq,
                "SQ": s.sq,
                "tubes": s.num_tubes,
            }
            for s in result.stq.per_sequence
        ],
        "mapping": {
            str(p): (names[t] if t >= 0 else "void") for p, t in result.matching.as_dict().items()
        },
        "counts": {"sequences": result.num_sequences, "frames": result.num_frames},
        "predictions": {"format": result.prediction_format, "sha256": result.prediction_digest},
        "run": {
            "seconds": result.seconds,
            "python": platform.python_version(),
            "machine": platform.machine(),
        },
    }
    if result.vpq is not None:
        document["metrics"]["VPQ"] = result.vpq.vpq
        document["metrics"]["VPQ_th"] = result.vpq.vpq_things
        document["metrics"]["VPQ_st"] = result.vpq.vpq_stuff
        document["metrics"]["VPQ_per_window"] = {
            str(k): _pq_to_dict(v, names) for k, v in sorted(result.vpq.per_window.items())
        }
    if result.pq is not None:
        document["metrics"]["PQ"] = _pq_to_dict(result.pq, names)
    if result.tracking is not None:
        headline = result.tracking.class_averaged.summary()
        document["metrics"] |= {k: headline[k] for k in TRACKING_HEADLINE if k in headline}
        document["metrics"]["tracking"] = _tracking_to_dict(result.tracking, names)
    return document


def results_json(document: Mapping[str, Any]) -> str:
    """The text of a results file: ``document`` as indented JSON with a trailing newline."""
    return json.dumps(document, indent=2, sort_keys=False) + "\n"


def write_results(path: str | Path, result: EvaluationResult) -> None:
    """Write ``result`` as indented JSON, atomically (a crash never leaves half a file)."""
    atomic_write_text(path, results_json(result_to_dict(result)))


#: The headline metrics of a results document by family, in the order tables show them.
METRIC_GROUPS = (
    ("STQ", ("STQ", "AQ", "SQ")),
    ("VPQ", ("VPQ", "VPQ_th", "VPQ_st")),
    ("PQ", ("PQ", "PQ_th", "PQ_st")),
    ("HOTA", ("HOTA", "DetA", "AssA", "LocA", "DetRe", "DetPr", "AssRe", "AssPr")),
    ("CLEAR", ("MOTA", "MOTP", "MOTSA", "sMOTSA", "IDSW", "Frag")),
    ("Identity", ("IDF1", "IDP", "IDR")),
)
#: Headline metrics that count events instead of being fractions.
COUNT_METRICS = frozenset({"IDSW", "Frag"})


def summary_metrics(document: Mapping[str, Any]) -> list[tuple[str, str, float]]:
    """``(family, metric, value)`` of every headline number the document holds, in table order.

    PQ is stored as a dict with its per-class values; its headline is ``PQ["PQ"]``, and its
    thing/stuff parts are shown as ``PQ_th``/``PQ_st``.
    """
    metrics = document["metrics"]
    flat = {key: value for key, value in metrics.items() if isinstance(value, int | float)}
    if isinstance(metrics.get("PQ"), Mapping):
        pq = metrics["PQ"]
        flat |= {"PQ": pq["PQ"], "PQ_th": pq["PQ_th"], "PQ_st": pq["PQ_st"]}
    return [
        (family, name, float(flat[name]))
        for family, names in METRIC_GROUPS
        for name in names
        if name in flat
    ]
