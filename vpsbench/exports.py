"""Paper-ready tables as CSV, Markdown and LaTeX, for ``evaluate --format`` and the leaderboard.

A table is columns (with an optional family label spanning neighbours, printed by LaTeX as a
header row of its own) and rows of cells. CSV keeps numbers as they are (fractions at full
precision, so it parses back to the same floats); Markdown and LaTeX show fractions in % with one
decimal, as the VideoCUPS paper prints them. Every text cell is escaped for its format.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from vpsbench.records import neutralise_bidi
from vpsbench.results import COUNT_METRICS, METRIC_GROUPS, summary_metrics

Cell = str | float | None
ColumnKind = Literal["text", "fraction", "count"]

_MARKDOWN_SPECIAL = "\\`*_[]|~"
_HTML_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}
_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "†": r"$^\dagger$",  # the paper's CUPS† (pdflatex has no glyph for the bare character)
    "–": "--",
    "—": "---",
}
_MISSING = "–"


class ExportFormat(StrEnum):
    """The text formats of an exported table."""

    CSV = "csv"
    MARKDOWN = "markdown"
    LATEX = "latex"


@dataclass(frozen=True)
class Column:
    """One column: ``key`` heads it in CSV/Markdown (unique), ``label`` under ``group`` in LaTeX."""

    key: str
    label: str
    group: str = ""
    kind: ColumnKind = "fraction"


@dataclass(frozen=True)
class ExportTable:
    """Columns, rows of cells (``None``: no value) and notes printed under the table."""

    columns: tuple[Column, ...]
    rows: tuple[tuple[Cell, ...], ...]
    notes: tuple[str, ...] = ()


def markdown_text(text: str) -> str:
    """Text that renders literally in a Markdown table cell (no markup, no raw HTML)."""
    escaped = "".join(_HTML_ENTITIES.get(ch, ch) for ch in neutralise_bidi(text))
    return "".join(f"\\{ch}" if ch in _MARKDOWN_SPECIAL else ch for ch in escaped)


def latex_text(text: str) -> str:
    """Text LaTeX typesets literally: its ten special characters escaped, † and dashes spelled."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in neutralise_bidi(text))


def _shown(value: Cell, kind: ColumnKind) -> str | None:
    """A cell as Markdown/LaTeX show it (unescaped), or None when it has no value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if kind == "text" or isinstance(value, str):
        return str(value)
    if kind == "count":
        return str(int(value))
    return f"{100.0 * value:.1f}"


def to_csv(table: ExportTable) -> str:
    """One header line of column keys, then one line per row; numbers at full precision."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([column.key for column in table.columns])
    for row in table.rows:
        writer.writerow(["" if cell is None else cell for cell in row])
    return buffer.getvalue()


def to_markdown(table: ExportTable) -> str:
    """A GitHub Markdown table (text left, numbers right) followed by its notes."""
    header = [markdown_text(column.key) for column in table.columns]
    rule = [":--" if column.kind == "text" else "--:" for column in table.columns]
    lines = [f"| {' | '.join(header)} |", f"|{'|'.join(rule)}|"]
    for row in table.rows:
        cells = []
        for cell, column in zip(row, table.columns, strict=True):
            shown = _shown(cell, column.kind)
            cells.append(_MISSING if shown is None else markdown_text(shown))
        lines.append(f"| {' | '.join(cells)} |")
    lines += ["", *(markdown_text(note) for note in table.notes)] if table.notes else []
    return "\n".join(lines) + "\n"


def to_latex(table: ExportTable) -> str:
    """A booktabs ``tabular`` with a spanning row of column families; notes as comments."""
    columns = table.columns
    spec = "".join("l" if column.kind == "text" else "r" for column in columns)
    lines = [f"% {latex_text(note)}" for note in table.notes]
    lines += [rf"\begin{{tabular}}{{{spec}}}", r"\toprule"]
    if any(column.group for column in columns):
        spans, rules, start = [], [], 1
        for group, members in itertools.groupby(columns, key=lambda column: column.group):
            width = len(list(members))
            if group:
                spans.append(rf"\multicolumn{{{width}}}{{c}}{{{latex_text(group)}}}")
                rules.append(rf"\cmidrule(lr){{{start}-{start + width - 1}}}")
            else:
                spans += [""] * width
            start += width
        lines += [" & ".join(spans) + r" \\", " ".join(rules)]
    lines.append(" & ".join(latex_text(column.label) for column in columns) + r" \\")
    lines.append(r"\midrule")
    for row in table.rows:
        cells = []
        for cell, column in zip(row, columns, strict=True):
            shown = _shown(cell, column.kind)
            cells.append("--" if shown is None else latex_text(shown))
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def render_table(table: ExportTable, format: ExportFormat | str) -> str:
    """``table`` as text in ``format`` (csv, markdown or latex)."""
    renderers = {
        ExportFormat.CSV: to_csv,
        ExportFormat.MARKDOWN: to_markdown,
        ExportFormat.LATEX: to_latex,
    }
    return renderers[ExportFormat(format)](table)


def results_table(documents: Sequence[Mapping[str, Any]]) -> ExportTable:
    """The summary of results documents: dataset, split, then every headline metric by family.

    One row per document; a metric missing from a document is an empty cell.
    """
    families: dict[str, str] = {}
    for document in documents:
        families |= {name: family for family, name, _ in summary_metrics(document)}
    order = [name for document in documents for _, name, _ in summary_metrics(document)]
    names = [name for _, metrics in METRIC_GROUPS for name in metrics if name in order]
    columns = [Column("dataset", "Dataset", kind="text"), Column("split", "Split", kind="text")]
    columns += [
        Column(name, name, families[name], "count" if name in COUNT_METRICS else "fraction")
        for name in names
    ]
    rows = []
    for document in documents:
        values = {name: value for _, name, value in summary_metrics(document)}
        rows.append(
            (str(document["dataset"]), str(document["split"]), *(values.get(n) for n in names))
        )
    return ExportTable(tuple(columns), tuple(rows))
