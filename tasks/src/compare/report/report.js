// Leaderboard sorting: click (or Enter on) any header; numbers compare as numbers, text
// compares with numeric awareness ("run-9" before "run-10"); empty cells always sort last.
(function () {
  "use strict";
  var table = document.getElementById("leaderboard");
  if (!table) { return; }
  var tbody = table.tBodies[0];
  var headers = Array.prototype.slice.call(table.tHead.rows[0].cells);
  var collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });

  function cellKey(row, col, numeric) {
    var cell = row.cells[col];
    var raw = cell.hasAttribute("data-v") ? cell.getAttribute("data-v") : cell.textContent.trim();
    if (raw === "") { return null; }
    if (numeric) {
      var n = Number(raw);
      return isFinite(n) ? n : null;
    }
    return raw;
  }

  function sortBy(th) {
    var col = th.cellIndex;
    var numeric = th.getAttribute("data-type") === "num";
    var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
    var rows = Array.prototype.slice.call(tbody.rows);
    rows.sort(function (a, b) {
      var x = cellKey(a, col, numeric), y = cellKey(b, col, numeric);
      var tie = Number(a.getAttribute("data-i")) - Number(b.getAttribute("data-i"));
      if (x === null && y === null) { return tie; }
      if (x === null) { return 1; }
      if (y === null) { return -1; }
      var c = numeric ? x - y : collator.compare(x, y);
      return c === 0 ? tie : c * dir;
    });
    var frag = document.createDocumentFragment();
    rows.forEach(function (r) { frag.appendChild(r); });
    tbody.appendChild(frag);
    headers.forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
  }

  headers.forEach(function (th) {
    th.addEventListener("click", function () { sortBy(th); });
    th.addEventListener("keydown", function (ev) {
      if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); sortBy(th); }
    });
  });

  // Test hook: `report.html?selftest` clicks headers itself and writes the row orders into the
  // page, so a headless browser's DOM dump shows whether sorting works.
  if (/[?&]selftest\b/.test(window.location.search)) {
    var order = function () {
      return Array.prototype.map.call(tbody.rows, function (r) { return r.getAttribute("data-id"); });
    };
    var click = function (key) {
      var th = table.querySelector('th[data-key="' + key + '"]');
      th.dispatchEvent(new MouseEvent("click", { bubbles: true }));
      return order();
    };
    var result = { initial: order() };
    result.id_asc = click("id");
    result.id_desc = click("id");
    result.mask_map_asc = click("mask_mAP");
    result.gpu_hours_asc = click("gpu_hours");
    result.name_asc = click("name");
    document.getElementById("selftest-result").textContent = JSON.stringify(result);
    var errs = window.__compareErrors || [];
    document.getElementById("selftest-errors").textContent = JSON.stringify(errs);
    document.body.setAttribute("data-selftest", "done");
  }
})();
