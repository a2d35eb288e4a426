"""The site's only script and stylesheet, shipped as files next to the pages (no CDN, no fetch).

The script sorts tables by moving existing rows; it reads ``data-sort`` attributes and
``textContent`` and never writes HTML, so record content can never become markup.
"""

from __future__ import annotations

SORT_JS = """\
"use strict";
/* Click a column header of a table.sortable to sort its rows (numbers first click: best first). */
(function () {
  function cellKey(row, index) {
    var cell = row.cells[index];
    if (!cell) {
      return "";
    }
    var key = cell.getAttribute("data-sort");
    return key === null ? cell.textContent.trim() : key;
  }

  function compareKeys(a, b, numeric) {
    if (numeric) {
      return parseFloat(a) - parseFloat(b);
    }
    return a.localeCompare(b, "en");
  }

  function sortBy(table, header) {
    var headers = table.tHead.rows[0].cells;
    var index = Array.prototype.indexOf.call(headers, header);
    var numeric = header.getAttribute("data-type") === "number";
    var current = header.getAttribute("aria-sort");
    var ascending;
    if (current === "ascending") {
      ascending = false;
    } else if (current === "descending") {
      ascending = true;
    } else {
      ascending = !numeric;
    }
    var body = table.tBodies[0];
    var keyed = Array.prototype.map.call(body.rows, function (row, position) {
      return { row: row, key: cellKey(row, index), position: position };
    });
    keyed.sort(function (a, b) {
      var aMissing = a.key === "";
      var bMissing = b.key === "";
      if (aMissing !== bMissing) {
        return aMissing ? 1 : -1;
      }
      var order = aMissing ? 0 : compareKeys(a.key, b.key, numeric);
      if (!ascending) {
        order = -order;
      }
      return order !== 0 ? order : a.position - b.position;
    });
    keyed.forEach(function (item) {
      body.appendChild(item.row);
    });
    Array.prototype.forEach.call(headers, function (other) {
      if (other.hasAttribute("data-type")) {
        other.setAttribute("aria-sort", "none");
      }
    });
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  }

  function activate(table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (header) {
      if (header.hasAttribute("data-type")) {
        header.addEventListener("click", function () {
          sortBy(table, header);
        });
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), activate);
  });
})();
"""

STYLE_CSS = """\
:root { --reproduced: #1a7f37; --reported: #9a6700; --stand-in: #6e7781; --line: #d0d7de;
  --muted: #57606a; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0;
  color: #1f2328; background: #ffffff; }
header, main, footer { max-width: 1100px; margin: 0 auto; padding: 0 1rem; }
header { padding-top: 1rem; border-bottom: 1px solid var(--line); }
header h1 { margin: 0.2rem 0 0.4rem; font-size: 1.6rem; }
nav a { margin-right: 1rem; }
footer { color: var(--muted); font-size: 0.85rem; padding: 2rem 1rem; }
h2 { margin-top: 2rem; border-bottom: 1px solid var(--line); padding-bottom: 0.2rem; }
a { color: #0969da; }
table { border-collapse: collapse; margin: 0.6rem 0 1rem; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid var(--line); padding: 0.3rem 0.6rem; text-align: left; }
td.num, th.num { text-align: right; }
th[data-type] { cursor: pointer; user-select: none; white-space: nowrap; }
th[data-type] button { all: inherit; display: inline; cursor: pointer; padding: 0; border: 0; }
th[aria-sort="ascending"]::after { content: " \\25B2"; font-size: 0.7em; }
th[aria-sort="descending"]::after { content: " \\25BC"; font-size: 0.7em; }
tr.reported td { color: #3d3d3d; font-style: italic; }
tr.reported td:first-child { border-left: 3px dashed var(--reported); }
tr.reproduced td:first-child { border-left: 3px solid var(--reproduced); }
td.reported { color: var(--reported); font-style: italic; }
td.reproduced { color: var(--reproduced); font-weight: 600; }
.badge { display: inline-block; font-size: 0.72rem; font-style: normal; font-weight: 600;
  padding: 0.05rem 0.45rem; border-radius: 1rem; letter-spacing: 0.02em; white-space: nowrap; }
.badge.reproduced { background: var(--reproduced); color: #ffffff; }
.badge.reported { background: #fff8c5; color: var(--reported); border: 1px dashed var(--reported); }
.badge.stand-in { background: repeating-linear-gradient(135deg, #eaeef2 0 4px, #ffffff 4px 8px);
  color: #24292f; border: 1px solid var(--stand-in); }
tr.stand-in td { color: var(--muted); }
.badge.reference { background: #ddf4ff; color: #0a3069; border: 1px solid #54aeff; }
tr.reference td { background: #f6f8fa; }
tr.reference td:first-child { border-left: 3px double #54aeff; }
tr.stand-in td:first-child { border-left: 3px dotted var(--stand-in); }
.legend, .note { color: var(--muted); }
.plots { display: flex; flex-wrap: wrap; gap: 1rem; }
.plot { background: #f6f8fa; border: 1px solid var(--line); border-radius: 6px; max-width: 100%;
  height: auto; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 0.2rem 1rem; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
code { font-size: 0.85em; }
"""
