//! The graph as SVG, laid out here: columns by distance from the clients
//! that nothing calls, nodes in a column in name order, edges as curves
//! (forward to the right, backward below), colours by namespace.

use super::{escape, Graph};
use std::collections::{BTreeMap, VecDeque};

const W: i64 = 210;
const H: i64 = 46;
const COL_GAP: i64 = 150;
const ROW_GAP: i64 = 34;
const MARGIN: i64 = 30;
const PALETTE: [&str; 8] = ["#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#e15759", "#9c755f"];

/// Where each node goes: (column, row).
fn layout(g: &Graph) -> BTreeMap<&str, (i64, i64)> {
    let mut callers: BTreeMap<&str, usize> = g.nodes.keys().map(|k| (k.as_str(), 0)).collect();
    let mut out: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (from, to) in g.edges.keys() {
        if from != to {
            *callers.entry(to).or_default() += 1;
        }
        out.entry(from).or_default().push(to);
    }
    let mut column: BTreeMap<&str, i64> = BTreeMap::new();
    // from the nodes nothing calls, then from whatever is left (cycles)
    let starts: Vec<&str> = callers.iter().filter(|(_, n)| **n == 0).map(|(k, _)| *k).collect();
    let mut queue: VecDeque<&str> = VecDeque::new();
    for s in starts.into_iter().chain(g.nodes.keys().map(String::as_str)) {
        if column.contains_key(s) {
            continue;
        }
        column.insert(s, 0);
        queue.push_back(s);
        while let Some(n) = queue.pop_front() {
            for next in out.get(n).into_iter().flatten() {
                if !column.contains_key(next) {
                    column.insert(next, column[n] + 1);
                    queue.push_back(next);
                }
            }
        }
    }
    let mut rows: BTreeMap<i64, i64> = BTreeMap::new();
    let mut at = BTreeMap::new();
    // in a column: by namespace, then name (nodes are keyed by id)
    let mut order: Vec<(&str, &super::Node)> = g.nodes.iter().map(|(k, n)| (k.as_str(), n)).collect();
    order.sort_by(|a, b| {
        (a.1.namespace.is_empty(), &a.1.namespace, &a.1.name).cmp(&(
            b.1.namespace.is_empty(),
            &b.1.namespace,
            &b.1.name,
        ))
    });
    for (id, _) in order {
        let c = column[id];
        let r = rows.entry(c).or_insert(0);
        at.insert(id, (c, *r));
        *r += 1;
    }
    at
}

fn xy((c, r): (i64, i64)) -> (i64, i64) {
    (MARGIN + c * (W + COL_GAP), MARGIN + r * (H + ROW_GAP))
}

pub fn render(g: &Graph) -> String {
    let at = layout(g);
    let columns = at.values().map(|p| p.0).max().map_or(0, |c| c + 1);
    let rows = at.values().map(|p| p.1).max().map_or(0, |r| r + 1);
    let (width, height) =
        (2 * MARGIN + columns * W + (columns - 1).max(0) * COL_GAP, 2 * MARGIN + rows * (H + ROW_GAP) + 40);
    let namespaces: Vec<&str> = {
        let mut v: Vec<&str> = g.nodes.values().map(|n| n.namespace.as_str()).filter(|n| !n.is_empty()).collect();
        v.sort();
        v.dedup();
        v
    };
    let colour = |ns: &str| namespaces.iter().position(|n| *n == ns).map_or("#888888", |i| PALETTE[i % PALETTE.len()]);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"flow-graph\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"12\">\n"
    );
    s += "<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M 0 0 L 10 5 L 0 10 z\" fill=\"#555\"/></marker></defs>\n";
    for ((from, to), e) in &g.edges {
        let (fx, fy) = xy(at[from.as_str()]);
        let (tx, ty) = xy(at[to.as_str()]);
        let (path, lx, ly) = if from == to {
            let (x, y) = (fx + W - 30, fy + H);
            (format!("M {x} {y} C {} {} {} {} {} {y}", x - 10, y + 40, x + 40, y + 40, x + 20), x + 10, y + 42)
        } else if tx > fx {
            let (x1, y1, x2, y2) = (fx + W, fy + H / 2, tx, ty + H / 2);
            (format!("M {x1} {y1} C {} {y1} {} {y2} {x2} {y2}", x1 + 60, x2 - 60), (x1 + x2) / 2, (y1 + y2) / 2 - 4)
        } else {
            // backward or within a column: below the boxes
            let (x1, y1, x2, y2) = (fx + W / 2, fy + H, tx + W / 2 + 12, ty + H);
            let dip = y1.max(y2) + ROW_GAP - 4;
            (format!("M {x1} {y1} C {x1} {dip} {x2} {dip} {x2} {y2}"), (x1 + x2) / 2, dip - 4)
        };
        let ports: Vec<&str> = e.ports.iter().map(String::as_str).collect();
        let label = escape(&ports.join(", "));
        s += &format!(
            "<g class=\"edge\" data-from=\"{}\" data-to=\"{}\"><title>{} → {}: {label}, {} flows</title><path d=\"{path}\" fill=\"none\" stroke=\"#555\" stroke-width=\"1.5\" marker-end=\"url(#arrow)\"/><text x=\"{lx}\" y=\"{ly}\" text-anchor=\"middle\" font-size=\"11\" fill=\"#333\">{label}</text></g>\n",
            escape(from), escape(to), escape(from), escape(to), e.flows
        );
    }
    for (id, n) in &g.nodes {
        let (x, y) = xy(at[id.as_str()]);
        let c = colour(&n.namespace);
        let dash = if n.namespace.is_empty() { " stroke-dasharray=\"5 3\"" } else { "" };
        s += &format!(
            "<g class=\"node\" data-id=\"{}\"><title>{}</title><rect x=\"{x}\" y=\"{y}\" width=\"{W}\" height=\"{H}\" rx=\"8\" fill=\"{c}22\" stroke=\"{c}\" stroke-width=\"2\"{dash}/><text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-weight=\"bold\">{}</text><text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#444\">{}</text></g>\n",
            escape(id),
            escape(id),
            x + W / 2,
            y + 19,
            escape(&clip(&n.name)),
            x + W / 2,
            y + 36,
            escape(&clip(&n.detail)),
        );
    }
    s += "</svg>\n";
    s
}

/// Fits a box: at most 30 characters.
fn clip(s: &str) -> String {
    if s.chars().count() <= 30 {
        return s.to_string();
    }
    let head: String = s.chars().take(29).collect();
    format!("{head}…")
}
