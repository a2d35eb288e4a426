"""Rich terminal tables of an evaluation result."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from vpsbench.evaluation import EvaluationResult


def _pct(value: float) -> str:
    return f"{100.0 * value:.1f}"


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
