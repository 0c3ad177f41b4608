//! The HTML report: one file, nothing fetched (styles, script and the SVG
//! inline), readable offline. The graph, the connection table (click a node
//! or type to filter it), and the generated policies.

use super::{escape, svg, Graph};
use crate::generate::Policy;
use crate::list;
use crate::yaml;
use serde_json::Value;

const STYLE: &str = "body{font-family:sans-serif;margin:24px;color:#222}h1{font-size:20px}h2{font-size:16px;margin-top:28px}\
#graph{overflow:auto;border:1px solid #ddd;padding:8px}.node{cursor:pointer}.dim{opacity:.2}\
table{border-collapse:collapse;font-size:13px}td,th{border-bottom:1px solid #eee;padding:4px 10px;text-align:left}\
tr.hidden{display:none}pre{background:#f6f6f6;padding:10px;font-size:12px;overflow:auto}#filter{margin-bottom:8px;width:320px}\
.note{color:#555;font-size:13px}";

const SCRIPT: &str = r#"(function () {
  var rows = Array.prototype.slice.call(document.querySelectorAll('#connections tbody tr'));
  var edges = Array.prototype.slice.call(document.querySelectorAll('#flow-graph .edge'));
  var nodes = Array.prototype.slice.call(document.querySelectorAll('#flow-graph .node'));
  var filter = document.getElementById('filter');
  var picked = null;
  function apply() {
    var text = filter.value.toLowerCase();
    rows.forEach(function (r) {
      var byText = !text || r.textContent.toLowerCase().indexOf(text) >= 0;
      var byNode = !picked || r.dataset.from === picked || r.dataset.to === picked;
      r.classList.toggle('hidden', !(byText && byNode));
    });
    edges.forEach(function (e) {
      e.classList.toggle('dim', !!picked && e.dataset.from !== picked && e.dataset.to !== picked);
    });
    nodes.forEach(function (n) {
      var near = !picked || n.dataset.id === picked || edges.some(function (e) {
        return (e.dataset.from === picked && e.dataset.to === n.dataset.id) || (e.dataset.to === picked && e.dataset.from === n.dataset.id);
      });
      n.classList.toggle('dim', !near);
    });
  }
  nodes.forEach(function (n) {
    n.addEventListener('click', function () { picked = picked === n.dataset.id ? null : n.dataset.id; apply(); });
  });
  filter.addEventListener('input', apply);
  document.body.dataset.rendered = String(nodes.length);
})();"#;

pub struct Report<'a> {
    pub graph: &'a Graph,
    /// `list --output json`.
    pub connections: &'a Value,
    /// What the policies are: `workload granularity, DNS allowed`.
    pub policy_note: String,
    pub policies: &'a [Policy],
}

pub fn render(r: &Report) -> String {
    let mut s = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>weavice: observed flows</title>",
    );
    s += &format!("<style>{STYLE}</style></head><body>\n<h1>weavice: observed flows</h1>\n");
    let count = r.connections.as_array().map_or(0, Vec::len);
    s += &format!(
        "<p class=\"note\">{} nodes, {} edges, {count} connections. Click a node to show its connections; click it again to show all.</p>\n",
        r.graph.nodes.len(),
        r.graph.edges.len()
    );
    s += "<div id=\"graph\">\n";
    s += &svg::render(r.graph);
    s += "</div>\n<h2>Connections</h2>\n<input id=\"filter\" type=\"search\" placeholder=\"filter: a name, a port, an address\">\n";
    s += "<table id=\"connections\"><thead><tr><th>id</th><th>from</th><th>to</th><th>protocol</th><th>port</th><th>flows</th><th>first seen</th><th>last seen</th></tr></thead><tbody>\n";
    for c in r.connections.as_array().into_iter().flatten() {
        let node_of = |end: &Value| graph_id(end);
        let port = list::port(c);
        s += &format!(
            "<tr data-from=\"{}\" data-to=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>{}{}</tr>\n",
            escape(&node_of(&c["from"])),
            escape(&node_of(&c["to"])),
            c["id"],
            escape(&list::label(&c["from"])),
            escape(&list::label(&c["to"])),
            escape(c["protocol"].as_str().unwrap_or_default()),
            escape(&port),
            c["flows"],
            seen(&c["firstSeen"]),
            seen(&c["lastSeen"]),
        );
    }
    s += "</tbody></table>\n";
    s += &format!("<h2>Generated policies</h2>\n<p class=\"note\">{}</p>\n", escape(&r.policy_note));
    for p in r.policies {
        s += &format!(
            "<details><summary>{}</summary><pre>{}</pre></details>\n",
            escape(&p.file_name()),
            escape(&yaml::to_yaml(&p.value))
        );
    }
    s += &format!("<script>{SCRIPT}</script>\n</body></html>\n");
    s
}

/// A time cell: to the second, the full time on hover.
fn seen(t: &Value) -> String {
    format!("<td title=\"{}\">{}</td>", escape(t.as_str().unwrap_or_default()), escape(&list::short(t)))
}

/// The graph node id of a listed end (as [`super::node`] names it).
fn graph_id(end: &Value) -> String {
    match (end["namespace"].as_str(), end["pod"].as_str()) {
        (Some(ns), Some(pod)) => match end["workload"].as_str() {
            Some(w) => format!("{ns}/{w}"),
            None => format!("{ns}/{pod}"),
        },
        _ => end["ip"].as_str().unwrap_or_default().to_string(),
    }
}
