// Sort a table by clicking a header: numbers by their data-value, text alphabetically.
// Plain DOM code, no library and nothing from the network (the site must work from file://).
document.querySelectorAll("table.sortable").forEach(function (table) {
  var headers = table.querySelectorAll("th[data-key]");
  headers.forEach(function (th, col) {
    th.addEventListener("click", function () {
      var asc = !th.classList.contains("asc");
      headers.forEach(function (h) { h.classList.remove("asc", "desc"); });
      th.classList.add(asc ? "asc" : "desc");
      var numeric = th.dataset.type === "num";
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col], y = b.cells[col];
        var d = numeric
          ? parseFloat(x.dataset.value) - parseFloat(y.dataset.value)
          : x.textContent.localeCompare(y.textContent);
        return asc ? d : -d;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
