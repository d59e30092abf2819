//! Graphviz dot output.

use std::fmt::Write as _;

use crate::graph::{RefGraph, Resolved};
use crate::layout::{edge_label_text, node_lines};
use crate::text::sanitize;
use crate::theme::Theme;

/// Font family requested from graphviz; matches the SVG renderer's monospace metrics.
const DOT_FONT: &str = "DejaVu Sans Mono";

/// Renders `graph` as a graphviz dot document with the light theme; see [`to_dot_with`].
pub fn to_dot(graph: &RefGraph) -> String {
    to_dot_with(graph, Theme::Light)
}

/// Renders `graph` as a graphviz dot document: boxes titled by type with subtitle lines, roots
/// filled green, targets filled red with a thick outline, edges labelled. Node statements are
/// named `n<id>`; every label is a quoted, escaped string, so heap text cannot break the syntax.
/// Duplicate nodes and dangling edges are skipped, as in every renderer.
pub fn to_dot_with(graph: &RefGraph, theme: Theme) -> String {
    let palette = theme.palette();
    let resolved = Resolved::new(graph);
    let mut out = String::with_capacity(256 + 96 * (graph.nodes.len() + graph.edges.len()));
    // Infallible: writing to a String cannot fail.
    let _ = writeln!(out, "digraph heapsight {{");
    let _ = writeln!(
        out,
        "  graph [rankdir=TB, bgcolor=\"{}\", nodesep=0.3, ranksep=0.5];",
        palette.background
    );
    let _ = writeln!(
        out,
        "  node [shape=box, style=\"filled,rounded\", fontname=\"{DOT_FONT}\", fontsize=11, \
         fillcolor=\"{}\", color=\"{}\", fontcolor=\"{}\"];",
        palette.normal.fill, palette.normal.stroke, palette.normal.text
    );
    let _ = writeln!(
        out,
        "  edge [fontname=\"{DOT_FONT}\", fontsize=9, color=\"{}\", fontcolor=\"{}\"];",
        palette.edge, palette.edge_label
    );
    for &index in &resolved.nodes {
        let node = &graph.nodes[index.index()];
        let lines = node_lines(node);
        let label = lines
            .iter()
            .map(|line| dot_escape(line))
            .collect::<Vec<_>>()
            .join("\\n");
        let colors = palette.node(node.kind);
        let _ = write!(out, "  n{} [label=\"{label}\"", node.id.0);
        if colors.fill != palette.normal.fill {
            let _ = write!(
                out,
                ", fillcolor=\"{}\", color=\"{}\", fontcolor=\"{}\", penwidth={}",
                colors.fill, colors.stroke, colors.text, colors.stroke_width
            );
        }
        let _ = writeln!(out, "];");
    }
    for &(edge_index, _, _) in &resolved.edges {
        let edge = &graph.edges[edge_index.index()];
        let _ = write!(out, "  n{} -> n{}", edge.from.0, edge.to.0);
        let label = edge_label_text(&edge.label);
        if !label.is_empty() {
            let _ = write!(out, " [label=\"{}\"]", dot_escape(&label));
        }
        let _ = writeln!(out, ";");
    }
    out.push_str("}\n");
    out
}

/// Escapes text for a double-quoted dot string. Backslashes are doubled so that heap text such as
/// `\N` or `\l` is shown literally instead of being expanded by graphviz; control characters were
/// already replaced by [`sanitize`].
fn dot_escape(text: &str) -> String {
    let clean = sanitize(text);
    let mut out = String::with_capacity(clean.len() + 8);
    for c in clean.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_quotes_and_backslashes() {
        assert_eq!(dot_escape(r#"say "hi" \N"#), r#"say \"hi\" \\N"#);
        assert_eq!(dot_escape("a\nb"), "a\u{240A}b");
    }
}
