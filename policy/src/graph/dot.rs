//! The graph as Graphviz DOT (`dot -Tpng graph.dot`), one cluster per
//! namespace.

use super::Graph;
use std::collections::BTreeMap;

pub fn render(g: &Graph) -> String {
    let q = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    let mut out = String::from("digraph flows {\n  rankdir=LR;\n  node [shape=box, style=rounded, fontname=\"sans-serif\"];\n  edge [fontname=\"sans-serif\", fontsize=10];\n");
    let mut by_ns: BTreeMap<&str, Vec<&super::Node>> = BTreeMap::new();
    for n in g.nodes.values() {
        by_ns.entry(&n.namespace).or_default().push(n);
    }
    for (i, (ns, nodes)) in by_ns.iter().enumerate() {
        let indent = if ns.is_empty() { "  " } else { "    " };
        if !ns.is_empty() {
            out += &format!("  subgraph cluster_{i} {{\n    label={};\n", q(&format!("namespace {ns}")));
        }
        for n in nodes {
            let style = if ns.is_empty() { ", style=dashed" } else { "" };
            out += &format!("{indent}{} [label={}{style}];\n", q(&n.id), q(&format!("{}\n{}", n.name, n.detail)));
        }
        if !ns.is_empty() {
            out += "  }\n";
        }
    }
    for ((from, to), e) in &g.edges {
        let ports: Vec<&str> = e.ports.iter().map(String::as_str).collect();
        let label = format!("{} ({} flows)", ports.join(", "), e.flows);
        out += &format!("  {} -> {} [label={}];\n", q(from), q(to), q(&label));
    }
    out += "}\n";
    out
}
