//! SVG output from our own layout; needs no external tools.

use std::fmt::Write as _;

use crate::graph::{NodeKind, RefGraph};
use crate::layout::{
    layout, EdgeRoute, Layout, Point, LABEL_FONT, LINE_HEIGHT_EM, NODE_PAD_Y, SUBTITLE_FONT,
    TITLE_FONT,
};
use crate::text::xml_escape;
use crate::theme::Theme;

/// Font stack: DejaVu Sans Mono first because PNG output embeds it and the layout measures text
/// with its advance width; the other monospace fonts have nearly the same advance.
pub(crate) const FONT_FAMILY: &str = "DejaVu Sans Mono, Menlo, Consolas, monospace";
/// Fraction of the font size above the baseline (DejaVu ascent), used to center text in a line.
const ASCENT_EM: f64 = 0.76;

/// Renders `graph` as a standalone SVG document with the light theme; see [`to_svg_with`].
pub fn to_svg(graph: &RefGraph) -> String {
    to_svg_with(graph, Theme::Light)
}

/// Renders `graph` as a standalone SVG document using the layered [`layout`]: boxes sized to
/// their text, roots green, targets red, curved edges with arrowheads and labels. All heap text
/// is sanitized and XML-escaped. Output is deterministic: the same graph gives the same bytes.
pub fn to_svg_with(graph: &RefGraph, theme: Theme) -> String {
    layout_to_svg(&layout(graph), graph, theme)
}

/// Serializes an already computed layout of `graph`.
pub fn layout_to_svg(layout: &Layout, graph: &RefGraph, theme: Theme) -> String {
    let palette = theme.palette();
    let empty = layout.nodes.is_empty();
    let (width, height) = if empty {
        (200.0, 48.0)
    } else {
        (layout.width, layout.height)
    };
    let mut out = String::with_capacity(1024 + 400 * (layout.nodes.len() + layout.edges.len()));
    let _ = writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="{FONT_FAMILY}">"#,
        w = num(width),
        h = num(height),
    );
    let _ = writeln!(
        out,
        "<title>heapsight reference graph: {} objects, {} references</title>",
        layout.nodes.len(),
        layout.edges.len()
    );
    let _ = writeln!(
        out,
        r#"<defs><marker id="hs-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="{}"/></marker></defs>"#,
        palette.edge
    );
    let _ = writeln!(
        out,
        r#"<rect x="0" y="0" width="{}" height="{}" fill="{}"/>"#,
        num(width),
        num(height),
        palette.background
    );
    if empty {
        let _ = writeln!(
            out,
            r#"<text x="100" y="28" font-size="{}" text-anchor="middle" fill="{}">no objects</text>"#,
            num(TITLE_FONT),
            palette.edge_label
        );
        out.push_str("</svg>\n");
        return out;
    }

    out.push_str("<g class=\"edges\">\n");
    for edge in &layout.edges {
        let d = match &edge.route {
            EdgeRoute::Polyline(points) => polyline_path(points),
            EdgeRoute::SelfLoop([start, c1, c2, end]) => format!(
                "M{},{} C{},{} {},{} {},{}",
                num(start.x),
                num(start.y),
                num(c1.x),
                num(c1.y),
                num(c2.x),
                num(c2.y),
                num(end.x),
                num(end.y)
            ),
        };
        let _ = writeln!(
            out,
            r#"<path d="{d}" fill="none" stroke="{}" stroke-width="1.2" marker-end="url(#hs-arrow)"/>"#,
            palette.edge
        );
    }
    for label in layout.edges.iter().filter_map(|e| e.label.as_ref()) {
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" font-size="{}" fill="{}">{}</text>"#,
            num(label.rect.x),
            num(baseline(label.rect.y, label.rect.height, LABEL_FONT)),
            num(LABEL_FONT),
            palette.edge_label,
            xml_escape(&label.text)
        );
    }
    out.push_str("</g>\n<g class=\"nodes\">\n");
    for node in &layout.nodes {
        let colors = palette.node(node.kind);
        let class = match node.kind {
            NodeKind::Root => "root",
            NodeKind::Target => "target",
            NodeKind::Normal => "normal",
        };
        let id = graph.nodes[node.node.index()].id.0;
        let rect = &node.rect;
        let _ = writeln!(out, r#"<g id="n{id}" class="node {class}">"#);
        let _ = writeln!(
            out,
            r#"<rect x="{}" y="{}" width="{}" height="{}" rx="4" ry="4" fill="{}" stroke="{}" stroke-width="{}"/>"#,
            num(rect.x),
            num(rect.y),
            num(rect.width),
            num(rect.height),
            colors.fill,
            colors.stroke,
            num(colors.stroke_width)
        );
        let center_x = rect.x + rect.width / 2.0;
        let mut line_top = rect.y + NODE_PAD_Y;
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" font-size="{}" font-weight="bold" text-anchor="middle" fill="{}">{}</text>"#,
            num(center_x),
            num(baseline(line_top, TITLE_FONT * LINE_HEIGHT_EM, TITLE_FONT)),
            num(TITLE_FONT),
            colors.text,
            xml_escape(&node.title)
        );
        line_top += TITLE_FONT * LINE_HEIGHT_EM;
        for line in &node.subtitle {
            let _ = writeln!(
                out,
                r#"<text x="{}" y="{}" font-size="{}" text-anchor="middle" fill="{}">{}</text>"#,
                num(center_x),
                num(baseline(
                    line_top,
                    SUBTITLE_FONT * LINE_HEIGHT_EM,
                    SUBTITLE_FONT
                )),
                num(SUBTITLE_FONT),
                colors.subtext,
                xml_escape(line)
            );
            line_top += SUBTITLE_FONT * LINE_HEIGHT_EM;
        }
        out.push_str("</g>\n");
    }
    out.push_str("</g>\n</svg>\n");
    out
}

/// Baseline y that vertically centers one line of `font_size` text in a line box.
fn baseline(line_top: f64, line_height: f64, font_size: f64) -> f64 {
    line_top + (line_height - font_size) / 2.0 + ASCENT_EM * font_size
}

/// Joins waypoints with cubic curves whose tangents are vertical at both ends, so edges leave
/// and enter boxes straight and bend smoothly in between (graphviz-like splines).
fn polyline_path(points: &[Point]) -> String {
    let mut d = String::new();
    let Some(first) = points.first() else {
        return d;
    };
    let _ = write!(d, "M{},{}", num(first.x), num(first.y));
    for pair in points.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if (a.x - b.x).abs() < 0.05 {
            let _ = write!(d, " L{},{}", num(b.x), num(b.y));
        } else {
            let mid = (b.y - a.y) / 2.0;
            let _ = write!(
                d,
                " C{},{} {},{} {},{}",
                num(a.x),
                num(a.y + mid),
                num(b.x),
                num(b.y - mid),
                num(b.x),
                num(b.y)
            );
        }
    }
    d
}

/// Coordinates with one decimal; enough precision for px and keeps files small and stable.
fn num(value: f64) -> String {
    let rounded = (value * 10.0).round() / 10.0;
    // Avoid "-0" so identical layouts serialize identically.
    let rounded = if rounded == 0.0 { 0.0 } else { rounded };
    if rounded.fract() == 0.0 {
        format!("{rounded:.0}")
    } else {
        format!("{rounded:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_formatting_is_compact_and_stable() {
        assert_eq!(num(3.0), "3");
        assert_eq!(num(3.04), "3");
        assert_eq!(num(3.06), "3.1");
        assert_eq!(num(-0.01), "0");
        assert_eq!(num(-2.5), "-2.5");
    }

    #[test]
    fn straight_segments_use_lines() {
        let d = polyline_path(&[
            Point { x: 1.0, y: 0.0 },
            Point { x: 1.0, y: 10.0 },
            Point { x: 5.0, y: 20.0 },
        ]);
        assert_eq!(d, "M1,0 L1,10 C1,15 5,15 5,20");
    }
}
