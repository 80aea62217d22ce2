//! `--format html`: one page with the collapsed graph and a table of every instance.
//!
//! The SVG shows the shape of a sweep; the table answers "which ones, and why". Everything is
//! inline (SVG, CSS, a few lines of script) so the page works from a file, offline, and can be
//! mailed or archived next to the results without anything it links to going missing.

use std::fmt::Write;

use flow_engine::graph::Graph;
use flow_engine::plan::Decision;

use super::model::Collapsed;
use super::svg::{escape, plural, render};
use super::{Drawn, all_reasons};

const STYLE: &str = r#"
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 1.5rem; color: #222; }
h1 { font-size: 1.2rem; margin: 0 0 1rem 0; }
.graph { overflow: auto; border: 1px solid #ddd; border-radius: 6px; margin-bottom: 1rem; max-height: 75vh; }
.graph svg { display: block; }
.graph g.node { cursor: pointer; }
.graph g.node:hover rect:first-of-type, .graph g.node:focus rect:first-of-type { stroke-width: 3; }
.graph g.node.selected rect:first-of-type { stroke: #1f5fbf; stroke-width: 3.5; }
.graph g.node:focus { outline: none; }
.controls { display: flex; gap: 1rem; align-items: center; margin: 0.5rem 0; flex-wrap: wrap; }
.controls input { font: inherit; padding: 0.3rem 0.5rem; min-width: 24rem; }
#node-filter { background: #e6eefb; border: 1px solid #9bb5e0; border-radius: 1rem; padding: 0.1rem 0.3rem 0.1rem 0.7rem; }
#node-filter button { border: none; background: none; cursor: pointer; font: inherit; }
[hidden] { display: none !important; }
#shown { color: #666; }
table { border-collapse: collapse; width: 100%; font-size: 0.9rem; }
th, td { text-align: left; padding: 0.25rem 0.6rem; border-bottom: 1px solid #eee; vertical-align: top; }
th { background: #f5f5f5; position: sticky; top: 0; }
td.id { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; white-space: nowrap; }
td.state { font-weight: 600; }
tr.fresh td.state { color: #2e7d32; }
tr.stale td.state { color: #8a6d00; }
tr.failed td.state { color: #b71c1c; }
tr.failed { background: #fdecea; }
"#;

/// Filters rows by every typed word (in id, state or reason) and by the clicked node.
const SCRIPT: &str = r#"
(function () {
  var input = document.getElementById('filter');
  var chip = document.getElementById('node-filter');
  var shown = document.getElementById('shown');
  var rows = Array.prototype.slice.call(document.querySelectorAll('#instances tbody tr'));
  var boxes = Array.prototype.slice.call(document.querySelectorAll('.graph g.node'));
  var node = null;
  function apply() {
    var words = input.value.toLowerCase().split(/\s+/).filter(function (w) { return w; });
    var count = 0;
    rows.forEach(function (r) {
      var text = r.textContent.toLowerCase();
      var ok = (node === null || r.getAttribute('data-node') === node) &&
        words.every(function (w) { return text.indexOf(w) >= 0; });
      r.hidden = !ok;
      if (ok) { count++; }
    });
    shown.textContent = count + ' of ' + rows.length + ' instances';
    chip.hidden = node === null;
    chip.querySelector('b').textContent = node === null ? '' : node;
    boxes.forEach(function (g) {
      g.classList.toggle('selected', g.getAttribute('data-node') === node);
    });
  }
  function pick(name) {
    node = node === name ? null : name;
    apply();
  }
  input.addEventListener('input', apply);
  chip.querySelector('button').addEventListener('click', function () { pick(null); });
  boxes.forEach(function (g) {
    var name = g.getAttribute('data-node');
    g.addEventListener('click', function () { pick(name); });
    g.addEventListener('keydown', function (e) {
      if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); pick(name); }
    });
  });
  apply();
})();
"#;

/// The page of `flow graph --format html`.
pub fn page(graph: &Graph, decisions: &[Option<Decision>]) -> String {
    let c = Collapsed::new(graph, decisions);
    let name = &graph.spec.source.name;
    let mut s = String::new();
    s.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    s.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    let _ = writeln!(s, "<title>flow graph {}</title>", escape(name));
    let _ = writeln!(s, "<style>{STYLE}</style>\n</head>\n<body>");
    let _ = writeln!(
        s,
        "<h1>flow graph {}: {} of {}</h1>",
        escape(name),
        plural(c.instances(), "instance"),
        plural(c.groups.len(), "node")
    );
    s.push_str("<div class=\"graph\">\n");
    s.push_str(&render(graph, &c, false));
    s.push_str("</div>\n");
    s.push_str(
        "<div class=\"controls\">\
         <input id=\"filter\" type=\"search\" placeholder=\"filter: words in the id, state or reason\" aria-label=\"filter instances\">\
         <span id=\"node-filter\" hidden>node <b></b> <button type=\"button\" title=\"show all nodes\">×</button></span>\
         <span id=\"shown\"></span>\
         <span class=\"hint\">click a box to show only its instances</span></div>\n",
    );
    s.push_str("<table id=\"instances\">\n<thead><tr><th>instance</th><th>state</th><th>reason</th></tr></thead>\n<tbody>\n");
    for g in &c.groups {
        for (k, &i) in g.instances.iter().enumerate() {
            let state: Drawn = g.states[k].0;
            let _ = writeln!(
                s,
                "<tr class=\"{st}\" data-node=\"{node}\"><td class=\"id\">{id}</td><td class=\"state\">{st}</td><td>{why}</td></tr>",
                st = state.as_str(),
                node = escape(&g.name),
                id = escape(&graph.nodes[i].id),
                why = escape(&all_reasons(&decisions[i])),
            );
        }
    }
    s.push_str("</tbody>\n</table>\n");
    let _ = writeln!(s, "<script>{SCRIPT}</script>\n</body>\n</html>");
    s
}
