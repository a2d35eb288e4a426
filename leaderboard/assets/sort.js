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
