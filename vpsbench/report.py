"""Rich terminal tables of an evaluation result."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from vpsbench.evaluation import EvaluationResult


def _pct(value: float) -> str:
    return f"{100.0 * value:.1f}"


#: The tracking tables and their columns, in TrackEval's order, where the metric was selected.
_TRACKING_TABLES = (
    ("HOTA (%, averaged over α = 0.05…0.95)",
     ("HOTA", "DetA", "AssA", "LocA", "DetRe", "DetPr", "AssRe", "AssPr")),
    ("CLEAR and Identity (%, masks)",
     ("MOTSA", "sMOTSA", "MOTSP", "IDSW", "Frag", "IDF1", "IDP", "IDR")),
)  # fmt: skip
_COUNT_COLUMNS = frozenset({"IDSW", "Frag"})


def _render_tracking(result: EvaluationResult, console: Console) -> None:
    """HOTA/CLEAR/Identity per thing class, class-averaged and detection-averaged."""
    tracking = result.tracking
    if tracking is None:
        return
    names = result.label_space.class_names
    rows = [(names[c], s.summary()) for c, s in sorted(tracking.per_class.items())]
    rows += [
        ("class avg", tracking.class_averaged.summary()),
        ("det avg", tracking.detection_averaged.summary()),
    ]
    for title, wanted in _TRACKING_TABLES:
        columns = [c for c in wanted if c in rows[-1][1]]
        if not columns:
            continue
        table = Table(title=title, title_justify="left")
        table.add_column("class")
        for column in columns:
            table.add_column(column, justify="right")
        for label, values in rows:
            cells = (
                str(int(values[c])) if c in _COUNT_COLUMNS else _pct(values[c]) for c in columns
            )
            table.add_row(label, *cells)
        console.print(table)


def render_result(result: EvaluationResult, console: Console, per_sequence: bool = True) -> None:
    """Print the summary, per-class IoU, the pseudo→GT mapping and per-sequence values."""
    names = result.label_space.class_names
    summary = Table(
        title=f"{result.dataset} {result.split} — {result.num_sequences} sequences, "
        f"{result.num_frames} frames, matching {result.settings.matching}",
        title_justify="left",
    )
    columns = {"STQ": result.stq.stq, "AQ": result.stq.aq, "SQ (mIoU)": result.stq.sq}
    if result.vpq is not None:
        columns |= {
            "VPQ": result.vpq.vpq,
            "VPQ_th": result.vpq.vpq_things,
            "VPQ_st": result.vpq.vpq_stuff,
        }
    if result.pq is not None:
        columns |= {"PQ": result.pq.pq, "PQ_th": result.pq.pq_things, "PQ_st": result.pq.pq_stuff}
    for column in columns:
        summary.add_column(column, justify="right")
    summary.add_row(*(_pct(value) for value in columns.values()))
    console.print(summary)
    if result.tracking is not None:
        _render_tracking(result, console)
    if result.vpq is not None:
        windows = Table(title="VPQ per window of k annotated frames (%)", title_justify="left")
        for column in ("k", "VPQ", "VPQ_th", "VPQ_st"):
            windows.add_column(column, justify="right")
        for k, window in sorted(result.vpq.per_window.items()):
            windows.add_row(str(k), _pct(window.pq), _pct(window.pq_things), _pct(window.pq_stuff))
        console.print(windows)

    classes = Table(
        title="Per-class IoU (%) and the pseudo-classes mapped to each class", title_justify="left"
    )
    classes.add_column("class")
    classes.add_column("kind")
    classes.add_column("IoU", justify="right")
    classes.add_column("pseudo-classes")
    sources: dict[int, list[str]] = {}
    for pseudo, target in result.matching.as_dict().items():
        if target >= 0 and result.matching.overlap[pseudo].sum() > 0:
            sources.setdefault(target, []).append(str(pseudo))
    for c in result.label_space.evaluated_classes:
        iou = result.stq.iou_per_class.get(c)
        kind = "thing" if c in result.label_space.thing_classes else "stuff"
        classes.add_row(
            names[c], kind, "—" if iou is None else _pct(iou), ", ".join(sources.get(c, []))
        )
    unmatched = [
        str(p)
        for p, t in result.matching.as_dict().items()
        if t < 0 and result.matching.overlap[p].sum() > 0
    ]
    if unmatched:
        classes.add_row("void", "", "", ", ".join(unmatched))
    console.print(classes)

    if per_sequence and len(result.stq.per_sequence) > 1:
        table = Table(title="Per sequence", title_justify="left")
        for column in ("sequence", "frames", "tubes", "STQ", "AQ", "SQ"):
            table.add_column(column, justify="left" if column == "sequence" else "right")
        for s in result.stq.per_sequence:
            table.add_row(
                s.name, str(s.num_frames), str(s.num_tubes), _pct(s.stq), _pct(s.aq), _pct(s.sq)
            )
        console.print(table)
