"""The static site's HTML pages, rendered from database queries with every record value escaped.

``index.html`` holds a cross-dataset summary and one sortable table per dataset split with its
scatter plots; ``methods/<method>.html`` holds each record of a method with its protocol,
provenance, per-class and per-sequence numbers. A Content-Security-Policy allows only the site's
own script and stylesheet, so even a value that slipped past escaping could not run.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape

from vpsbench.leaderboard.database import (
    BoardKey,
    BoardRow,
    LeaderboardDatabase,
    MethodRecord,
    SummaryRow,
)
from vpsbench.leaderboard.plots import ScatterPoint, bars_svg, scatter_svg
from vpsbench.records import ResultRecord

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'"
)
REPORTED_NOTE = "copied from a paper, not reproduced by vpsbench"
REPRODUCED_NOTE = "re-evaluated by vpsbench from the predictions (SHA-256 recorded)"


def percent(value: float | None, precision: float | None = None) -> str:
    """A fraction shown in % with as many decimals as it was given to (1 for 0.1 % rounding)."""
    if value is None:
        return "–"
    decimals = 1 if precision is not None and precision >= 0.001 else 2
    return f"{100 * value:.{decimals}f}"


def _text(value: object) -> str:
    """Escape any value for HTML text or a double-quoted attribute."""
    return escape(str(value), quote=True)


def method_page(method: str) -> str:
    """The site path of a method's page (method ids are slugs, safe in a path)."""
    return f"methods/{method}.html"


def record_file(path: str) -> str:
    """The site path of a record's canonical JSON copy."""
    return f"records/{path}"


def badge(provenance: str) -> str:
    """The provenance badge: reproduced (solid green) or reported (dashed amber)."""
    note = REPORTED_NOTE if provenance == "reported" else REPRODUCED_NOTE
    return (
        f'<span class="badge {_text(provenance)}" title="{_text(note)}">{_text(provenance)}</span>'
    )


def page(title: str, body: str, prefix: str = "") -> str:
    """A full HTML document with the site's stylesheet, script and security policy."""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">\n'
        '<meta name="referrer" content="no-referrer">\n'
        '<link rel="icon" href="data:,">\n'
        f"<title>{_text(title)}</title>\n"
        f'<link rel="stylesheet" href="{prefix}assets/style.css">\n'
        f'<script src="{prefix}assets/sort.js" defer></script>\n'
        "</head>\n<body>\n"
        f'<header><h1>{_text(title)}</h1><nav><a href="{prefix}index.html">Leaderboard</a>'
        f'<a href="{prefix}leaderboard.json">leaderboard.json</a>'
        f'<a href="{prefix}leaderboard.md">leaderboard.md</a></nav></header>\n'
        f"<main>\n{body}</main>\n"
        "<footer>Built by <code>vpsbench leaderboard build</code> from the result records in "
        "<code>submissions/</code>. STQ, AQ, SQ and VPQ in %.</footer>\n"
        "</body>\n</html>\n"
    )


def _header_cell(
    label: str, kind: str | None, sort: str | None = None, numeric: bool = False
) -> str:
    """A column header; sortable (a button) when it has a data type."""
    attributes = ' class="num"' if numeric else ""
    if kind is None:
        return f"<th{attributes}>{_text(label)}</th>"
    attributes += f' data-type="{kind}"' + (f' aria-sort="{sort}"' if sort else "")
    return f'<th{attributes}><button type="button">{_text(label)}</button></th>'


def _number_cell(value: float | None, precision: float | None, extra_class: str = "") -> str:
    """A % cell whose exact value is its sort key (empty: sorts last)."""
    key = "" if value is None else repr(value)
    classes = f"num {extra_class}".strip()
    return f'<td class="{classes}" data-sort="{key}">{percent(value, precision)}</td>'


def _sortable_table(table_id: str, headers: Iterable[str], rows: Iterable[str]) -> str:
    """A table that assets/sort.js makes sortable by its headers."""
    return (
        f'<table class="sortable" id="{_text(table_id)}">\n<thead><tr>{"".join(headers)}</tr>'
        f"</thead>\n<tbody>\n{''.join(rows)}</tbody>\n</table>\n"
    )


def _board_row(row: BoardRow) -> str:
    """One method's row on a board, styled and badged by provenance."""
    locator = f" {_text(row.citation_locator)}" if row.citation_locator else ""
    return (
        f'<tr class="{_text(row.provenance)}" data-method="{_text(row.method)}">'
        f'<td class="num" data-sort="{row.rank}">{row.rank}</td>'
        f'<td class="method" data-sort="{_text(row.method_name.casefold())}">'
        f'<a href="{method_page(row.method)}">{_text(row.method_name)}</a></td>'
        f'<td data-sort="{_text(row.provenance)}">{badge(row.provenance)}'
        f'<span class="note">{locator}</span></td>'
        f"{_number_cell(row.stq, row.precision)}{_number_cell(row.aq, row.precision)}"
        f"{_number_cell(row.sq, row.precision)}{_number_cell(row.vpq, row.precision)}"
        f"<td>{_text(row.method_version)}</td>"
        f'<td><a href="{record_file(row.path)}">JSON</a></td></tr>\n'
    )


def _board_section(key: BoardKey, rows: Sequence[BoardRow]) -> str:
    """A dataset split's sortable table and its two scatter plots."""
    headers = [
        _header_cell("#", "number", numeric=True),
        _header_cell("Method", "text"),
        _header_cell("Provenance", "text"),
        _header_cell("STQ", "number", "descending", numeric=True),
        _header_cell("AQ", "number", numeric=True),
        _header_cell("SQ", "number", numeric=True),
        _header_cell("VPQ", "number", numeric=True),
        _header_cell("Version", "text"),
        _header_cell("Record", None),
    ]
    table = _sortable_table(f"board-{key.anchor}", headers, (_board_row(r) for r in rows))
    points = [ScatterPoint(r.method_name, r.aq, r.stq, r.provenance == "reported") for r in rows]
    by_sq = [ScatterPoint(r.method_name, r.sq, r.stq, r.provenance == "reported") for r in rows]
    plots = scatter_svg(points, "AQ", "STQ", f"{key.label}: STQ vs AQ") + scatter_svg(
        by_sq, "SQ", "STQ", f"{key.label}: STQ vs SQ"
    )
    return (
        f'<section class="board" id="{_text(key.anchor)}">\n'
        f"<h2>{_text(key.dataset)} <small>{_text(key.split)}</small></h2>\n"
        f'{table}<div class="plots">{plots}</div>\n</section>\n'
    )


def _summary_section(boards: Sequence[BoardKey], summary: Sequence[SummaryRow]) -> str:
    """The cross-dataset table: STQ per split and the mean per method."""
    headers = [_header_cell("Method", "text")]
    headers += [_header_cell(f"{key.label} STQ", "number", numeric=True) for key in boards]
    headers += [
        _header_cell("Boards", "number", numeric=True),
        _header_cell("Mean STQ", "number", "descending", numeric=True),
    ]
    rows = []
    for row in summary:
        cells = [
            f'<td class="method" data-sort="{_text(row.method_name.casefold())}">'
            f'<a href="{method_page(row.method)}">{_text(row.method_name)}</a></td>'
        ]
        for key in boards:
            cell = row.cells.get(key)
            if cell is None:
                cells.append('<td class="num" data-sort="">–</td>')
            else:
                precision = 0.001 if cell.provenance == "reported" else None
                cells.append(_number_cell(cell.stq, precision, cell.provenance))
        cells.append(f'<td class="num" data-sort="{row.boards}">{row.boards}</td>')
        cells.append(_number_cell(row.mean_stq, None))
        rows.append(f'<tr data-method="{_text(row.method)}">{"".join(cells)}</tr>\n')
    return (
        '<section id="summary">\n<h2>Across datasets</h2>\n'
        '<p class="legend">STQ per dataset split; the mean is over the splits a method has. '
        'Amber italic: <span class="badge reported">reported</span> numbers, '
        f'{REPORTED_NOTE}; green: <span class="badge reproduced">reproduced</span>, '
        f"{REPRODUCED_NOTE}.</p>\n"
        f"{_sortable_table('summary-table', headers, rows)}</section>\n"
    )


def render_index(database: LeaderboardDatabase) -> str:
    """``index.html``: the cross-dataset summary and one sortable table per dataset split."""
    boards = database.boards()
    contents = "".join(
        f'<li><a href="#{_text(key.anchor)}">{_text(key.label)}</a></li>' for key in boards
    )
    body = (
        '<p class="legend">Unsupervised video panoptic segmentation (STQ, AQ, SQ, VPQ in %). '
        "Click a column header to sort. Every number links to the record it comes from.</p>\n"
        f"<ul>{contents}</ul>\n"
        + _summary_section(boards, database.summary())
        + "".join(_board_section(key, database.board(key)) for key in boards)
    )
    return page("vpsbench leaderboard", body)


def _facts(items: Iterable[tuple[str, str]]) -> str:
    """A definition list of already-escaped values."""
    rows = "".join(f"<dt>{_text(label)}</dt><dd>{value}</dd>" for label, value in items)
    return f'<dl class="facts">{rows}</dl>\n'


def _link(url: str, label: str) -> str:
    """An outgoing link; URLs were validated as http(s) and are escaped here as well."""
    return f'<a href="{_text(url)}" rel="nofollow noopener noreferrer">{_text(label)}</a>'


def _provenance_facts(record: ResultRecord) -> list[tuple[str, str]]:
    """Badge, citation and rounding of a record (escaped HTML)."""
    facts = [("provenance", badge(record.provenance))]
    if record.citation is not None:
        citation = _text(record.citation.text)
        if record.citation.locator:
            citation += f", {_text(record.citation.locator)}"
        if record.citation.url:
            citation += f" ({_link(record.citation.url, record.citation.url)})"
        facts.append(("citation", citation))
    if record.precision is not None:
        facts.append(("rounded to", f"{100 * record.precision:g} %"))
    return facts


def _record_facts(record: ResultRecord, path: str) -> str:
    """Everything a record says about how its numbers were obtained."""
    protocol = record.protocol
    facts = [
        ("method", f"<code>{_text(record.method)}</code> version {_text(record.method_version)}"),
        *_provenance_facts(record),
    ]
    optional = [
        ("method commit", record.method_commit),
        ("vpsbench", record.vpsbench_version),
        ("predictions sha256", record.predictions.sha256 if record.predictions else None),
        ("prediction format", record.predictions.format if record.predictions else None),
        ("matching", protocol.matching),
        ("label space", protocol.label_space),
        ("thing classes", ", ".join(protocol.thing_classes) or None),
        ("stuff classes", ", ".join(protocol.stuff_classes) or None),
        (
            "pseudo things",
            ", ".join(str(c) for c in protocol.pseudo_things) if protocol.pseudo_things else None,
        ),
        (
            "void as class",
            None if protocol.count_void_column is None else str(protocol.count_void_column),
        ),
        ("protocol options", ", ".join(f"{k}={v}" for k, v in sorted(protocol.options.items()))),
        (
            "evaluated",
            f"{record.counts.sequences} sequences, {record.counts.frames} frames"
            if record.counts
            else None,
        ),
        ("run time", f"{record.run.seconds:.2f} s" if record.run and record.run.seconds else None),
        ("machine", record.run.machine if record.run else None),
        ("hardware", record.run.hardware if record.run else None),
        ("python", record.run.python if record.run else None),
        ("timestamp", record.timestamp.isoformat()),
        ("notes", record.notes),
    ]
    facts += [(label, _text(value)) for label, value in optional if value]
    if record.links:
        facts.append(("links", " · ".join(_link(link.url, link.label) for link in record.links)))
    facts.append(("record", f'<a href="../{record_file(path)}">{_text(path)}</a>'))
    return _facts(facts)


def _headline_table(record: ResultRecord) -> str:
    """The record's split-level numbers in one row."""
    metrics = record.metrics
    names = ["STQ", "AQ", "SQ", "VPQ", "VPQ things", "VPQ stuff", "PQ"]
    values = [
        metrics.stq,
        metrics.aq,
        metrics.sq,
        metrics.vpq,
        metrics.vpq_things,
        metrics.vpq_stuff,
        metrics.pq,
    ]
    shown = [(n, v) for n, v in zip(names, values, strict=True) if v is not None]
    head = "".join(f'<th class="num">{_text(n)}</th>' for n, _ in shown)
    cells = "".join(_number_cell(v, record.precision) for _, v in shown)
    return (
        f'<table class="headline"><thead><tr>{head}</tr></thead>'
        f"<tbody><tr>{cells}</tr></tbody></table>\n"
    )


def _record_section(database: LeaderboardDatabase, entry: MethodRecord) -> str:
    """One record in full: numbers, facts, per-class and per-sequence tables."""
    record = entry.record
    anchor = f"{record.dataset}-{record.split}"
    parts = [
        f'<section class="record {_text(record.provenance)}" id="{_text(anchor)}">\n'
        f"<h2>{_text(record.dataset)} <small>{_text(record.split)}</small> "
        f"{badge(record.provenance)}</h2>\n",
        _headline_table(record),
        _record_facts(record, entry.path),
    ]
    classes = database.class_values(entry.record_id)
    if classes:
        headers = [_header_cell("Class", "text"), _header_cell("IoU", "number", numeric=True)]
        rows = (
            f'<tr><td data-sort="{_text(c.class_name)}">{_text(c.class_name)}</td>'
            f"{_number_cell(c.iou, record.precision)}</tr>\n"
            for c in classes
        )
        parts.append(
            f"<h3>Per-class IoU</h3>\n{_sortable_table(f'classes-{anchor}', headers, rows)}"
        )
        bars = [(c.class_name, c.iou) for c in classes]
        parts.append(f'<div class="plots">{bars_svg(bars, f"{anchor}: IoU per class (%)")}</div>\n')
    sequences = database.sequence_values(entry.record_id)
    if sequences:
        headers = [
            _header_cell("Sequence", "text"),
            _header_cell("Frames", "number", numeric=True),
            _header_cell("Tubes", "number", numeric=True),
            _header_cell("STQ", "number", numeric=True),
            _header_cell("AQ", "number", numeric=True),
            _header_cell("SQ", "number", numeric=True),
        ]
        rows = (
            f'<tr><td data-sort="{_text(s.sequence)}">{_text(s.sequence)}</td>'
            f'<td class="num" data-sort="{"" if s.frames is None else s.frames}">'
            f"{'–' if s.frames is None else s.frames}</td>"
            f'<td class="num" data-sort="{"" if s.tubes is None else s.tubes}">'
            f"{'–' if s.tubes is None else s.tubes}</td>"
            f"{_number_cell(s.stq, record.precision)}{_number_cell(s.aq, record.precision)}"
            f"{_number_cell(s.sq, record.precision)}</tr>\n"
            for s in sequences
        )
        parts.append(
            f"<h3>Per sequence</h3>\n{_sortable_table(f'sequences-{anchor}', headers, rows)}"
        )
    if record.mapping:
        pairs = sorted(record.mapping.items(), key=lambda item: int(item[0]))
        rows_html = "".join(f"<tr><td>{_text(p)}</td><td>{_text(t)}</td></tr>" for p, t in pairs)
        parts.append(
            "<details><summary>Pseudo-class → class mapping</summary>"
            "<table><thead><tr><th>pseudo-class</th><th>class</th></tr></thead>"
            f"<tbody>{rows_html}</tbody></table></details>\n"
        )
    parts.append("</section>\n")
    return "".join(parts)


def render_method_page(database: LeaderboardDatabase, method: str, method_name: str) -> str:
    """``methods/<method>.html``: every record of one method in full."""
    records = database.method_records(method)
    contents = "".join(
        f'<li><a href="#{_text(e.record.dataset)}-{_text(e.record.split)}">'
        f"{_text(e.record.dataset)} {_text(e.record.split)}</a> {badge(e.record.provenance)}</li>"
        for e in records
    )
    body = f"<ul>{contents}</ul>\n" + "".join(_record_section(database, entry) for entry in records)
    return page(method_name, body, prefix="../")
