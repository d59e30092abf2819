//! Reference-graph renderers: syntax of each output, escaping, layout geometry, rasterization.

use std::path::Path;
use std::time::{Duration, Instant};

use heapsight_report::layout::{EdgeRoute, Layout, Point, Rect};
use heapsight_report::{
    layout, render, render_to_file, to_dot, to_png, to_png_with, to_svg, to_svg_with, GraphFormat,
    NodeKind, PngOptions, RefGraph, RefNodeId, RenderError, RenderOptions, Renderer, Theme,
};
use resvg::tiny_skia::Pixmap;

/// Deterministic xorshift generator so random graphs are reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const TYPE_NAMES: [&str; 8] = [
    "dict",
    "list",
    "myapp.models.Session",
    "function",
    "cell",
    "tuple",
    "collections.OrderedDict",
    "a_very_long_module_name.with_many.parts.and_an_even_longer_ClassName",
];

fn random_graph(seed: u64, nodes: u64, edges: u64, labelled: bool) -> RefGraph {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut graph = RefGraph::new();
    for i in 0..nodes {
        let kind = match rng.below(6) {
            0 => NodeKind::Root,
            1 => NodeKind::Target,
            _ => NodeKind::Normal,
        };
        let title = TYPE_NAMES[rng.below(TYPE_NAMES.len() as u64) as usize];
        let subtitle = match rng.below(3) {
            0 => String::new(),
            1 => format!("len {}", rng.below(10_000)),
            _ => format!("{} KiB\nline two", rng.below(900)),
        };
        graph.add_node(RefNodeId(1000 + i), title, subtitle, kind);
    }
    for _ in 0..edges {
        let from = RefNodeId(1000 + rng.below(nodes));
        let to = RefNodeId(1000 + rng.below(nodes));
        let label = if labelled && rng.below(4) != 0 {
            format!("attr_{}", "x".repeat(rng.below(12) as usize))
        } else {
            String::new()
        };
        graph.add_edge(from, to, label);
    }
    graph
}

fn backref_chain() -> RefGraph {
    let mut graph = RefGraph::new();
    let module = graph.add_node(RefNodeId(1), "module", "myapp.cache", NodeKind::Root);
    let dict = graph.add_node(RefNodeId(2), "dict", "len 3", NodeKind::Normal);
    let leak = graph.add_node(
        RefNodeId(3),
        "bytes",
        "<script>alert(\"x\")</script>",
        NodeKind::Target,
    );
    graph.add_edge(module, dict, "__dict__");
    graph.add_edge(dict, leak, "'<b>&key'");
    graph
}

/// Walks a dot document: quoted strings must terminate (honouring backslash escapes) and braces
/// outside strings must balance. Returns the unescaped contents of all quoted strings.
fn check_dot_syntax(dot: &str) -> Vec<String> {
    let mut depth = 0i32;
    let mut strings = Vec::new();
    let mut chars = dot.chars();
    while let Some(c) = chars.next() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                assert!(depth >= 0, "unbalanced closing brace");
            }
            '"' => {
                let mut value = String::new();
                loop {
                    match chars.next() {
                        None => panic!("unterminated string"),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(escaped) => {
                                value.push('\\');
                                value.push(escaped);
                            }
                            None => panic!("dangling backslash"),
                        },
                        Some('\n') => panic!("raw newline inside a string"),
                        Some(other) => value.push(other),
                    }
                }
                strings.push(value);
            }
            _ => {}
        }
    }
    assert_eq!(depth, 0, "unbalanced braces");
    strings
}

#[test]
fn dot_is_balanced_and_escaped() {
    let mut graph = backref_chain();
    let odd = graph.add_node(
        RefNodeId(4),
        "str",
        "say \"}{\" \\N\nnext",
        NodeKind::Normal,
    );
    graph.add_edge(RefNodeId(2), odd, "k\"ey}");
    graph.add_edge(RefNodeId(2), RefNodeId(99), "dangling");
    let dot = to_dot(&graph);
    assert!(dot.starts_with("digraph heapsight {"));
    let strings = check_dot_syntax(&dot);
    // The subtitle's own newline starts a new label line; its backslash stays literal.
    assert!(
        strings.iter().any(|s| s == r#"str\nsay \"}{\" \\N\nnext"#),
        "{strings:?}"
    );
    assert!(strings.iter().any(|s| s == r#"k\"ey}"#));
    assert!(dot.contains("n1 -> n2"));
    assert!(dot.contains("n2 -> n4"));
    assert!(!dot.contains("n99"), "edges to unknown nodes are skipped");
    // Roots and targets are colored differently from ordinary nodes.
    let line_of = |id: &str| {
        dot.lines()
            .find(|l| l.trim_start().starts_with(id))
            .unwrap_or_default()
    };
    assert!(line_of("n1 [").contains("#cdeccd"));
    assert!(line_of("n3 [").contains("#f9d0d0"));
    assert!(!line_of("n2 [").contains("fillcolor"));
    for seed in 0..20 {
        check_dot_syntax(&to_dot(&random_graph(seed, 12, 20, true)));
    }
}

#[test]
fn svg_is_well_formed_and_escapes_heap_text() {
    let svg = to_svg(&backref_chain());
    let doc =
        roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("invalid XML: {e}\n{svg}"));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    assert!(
        !svg.contains("<script"),
        "raw heap markup leaked into the SVG"
    );
    assert!(!svg.contains("<b>"));
    assert!(svg.contains("&lt;script&gt;"));
    let texts: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .collect();
    assert!(
        texts.contains(&"<script>alert(\"x\")</script>"),
        "{texts:?}"
    );
    assert!(texts.contains(&"'<b>&key'"));
    assert!(texts.contains(&"module"));
    let groups: Vec<_> = doc
        .descendants()
        .filter(|n| n.attribute("class").is_some_and(|c| c.starts_with("node ")))
        .collect();
    assert_eq!(groups.len(), 3);
    assert_eq!(
        doc.descendants()
            .filter(|n| n.attribute("class") == Some("node target"))
            .count(),
        1
    );

    // Control characters become visible pictures and never reach the XML (forbidden in XML 1.0).
    let mut graph = RefGraph::new();
    graph.add_node(
        RefNodeId(1),
        "str",
        "a\u{1}b\u{1b}[31m\u{FFFF}",
        NodeKind::Normal,
    );
    let svg = to_svg(&graph);
    roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("invalid XML: {e}"));
    assert!(!svg.contains('\u{1b}') && !svg.contains('\u{1}'));
    assert!(svg.contains("a\u{2401}b\u{241B}[31m\u{FFFD}"));

    for seed in 0..30 {
        for theme in [Theme::Light, Theme::Dark] {
            let svg = to_svg_with(&random_graph(seed, 15, 25, seed % 2 == 0), theme);
            roxmltree::Document::parse(&svg)
                .unwrap_or_else(|e| panic!("seed {seed}: invalid XML: {e}"));
        }
    }
}

#[test]
fn output_is_deterministic() {
    let graph = random_graph(7, 25, 50, true);
    assert_eq!(to_svg(&graph), to_svg(&graph));
    assert_eq!(to_dot(&graph), to_dot(&graph));
    // Small scale: rasterizing is slow in unoptimized test builds.
    let options = PngOptions {
        system_fonts: false,
        scale: 0.25,
        ..PngOptions::default()
    };
    assert_eq!(
        to_png_with(&graph, &options).ok(),
        to_png_with(&graph, &options).ok()
    );
}

fn assert_geometry(graph: &RefGraph, layout: &Layout, context: &str) {
    let rects: Vec<Rect> = layout.nodes.iter().map(|n| n.rect).collect();
    for (i, a) in rects.iter().enumerate() {
        assert!(
            a.x >= 0.0 && a.y >= 0.0,
            "{context}: node {i} outside canvas"
        );
        assert!(
            a.right() <= layout.width && a.bottom() <= layout.height,
            "{context}: node {i} outside canvas"
        );
        for (j, b) in rects.iter().enumerate().skip(i + 1) {
            assert!(
                !a.intersects(b),
                "{context}: nodes {i} and {j} overlap: {a:?} {b:?}"
            );
        }
    }
    let labels: Vec<Rect> = layout
        .edges
        .iter()
        .filter_map(|e| e.label.as_ref())
        .map(|l| l.rect)
        .collect();
    for (i, label) in labels.iter().enumerate() {
        assert!(
            label.right() <= layout.width + 0.01,
            "{context}: label {i} outside canvas"
        );
        for rect in &rects {
            assert!(
                !label.intersects(rect),
                "{context}: label {i} overlaps a node: {label:?} {rect:?}"
            );
        }
        for other in labels.iter().skip(i + 1) {
            assert!(
                !label.intersects(other),
                "{context}: labels overlap: {label:?} {other:?}"
            );
        }
    }
    // Every edge starts on its referrer's box and ends on its referent's box.
    let rect_of = |id: RefNodeId| {
        let position = graph
            .nodes
            .iter()
            .position(|n| n.id == id)
            .unwrap_or(usize::MAX);
        layout
            .nodes
            .iter()
            .find(|n| n.node.index() == position)
            .map(|n| n.rect)
    };
    let on_border = |p: Point, r: Rect| {
        let within_x = p.x >= r.x - 0.01 && p.x <= r.right() + 0.01;
        let within_y = p.y >= r.y - 0.01 && p.y <= r.bottom() + 0.01;
        within_x
            && within_y
            && ((p.y - r.y).abs() < 0.01
                || (p.y - r.bottom()).abs() < 0.01
                || (p.x - r.right()).abs() < 0.01)
    };
    for placed in &layout.edges {
        let edge = &graph.edges[placed.edge.index()];
        let (Some(from), Some(to)) = (rect_of(edge.from), rect_of(edge.to)) else {
            panic!("{context}: routed edge between unknown nodes");
        };
        let (start, end) = match &placed.route {
            EdgeRoute::Polyline(points) => {
                assert!(points.len() >= 2, "{context}: degenerate edge");
                (points[0], points[points.len() - 1])
            }
            EdgeRoute::SelfLoop(points) => {
                assert_eq!(
                    edge.from, edge.to,
                    "{context}: self-loop route for a normal edge"
                );
                (points[0], points[3])
            }
        };
        assert!(
            on_border(start, from),
            "{context}: edge does not leave its referrer"
        );
        assert!(
            on_border(end, to),
            "{context}: edge does not reach its referent"
        );
    }
}

/// Samples the drawn curve of a polyline route exactly as the SVG writer builds it: cubic
/// segments with vertical tangents between consecutive waypoints.
fn sample_route(points: &[Point]) -> Vec<Point> {
    let mut samples = Vec::new();
    for pair in points.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let mid = (b.y - a.y) / 2.0;
        let controls = [
            a,
            Point {
                x: a.x,
                y: a.y + mid,
            },
            Point {
                x: b.x,
                y: b.y - mid,
            },
            b,
        ];
        for step in 0..=20 {
            let t = f64::from(step) / 20.0;
            let u = 1.0 - t;
            let weights = [u * u * u, 3.0 * u * u * t, 3.0 * u * t * t, t * t * t];
            samples.push(Point {
                x: controls.iter().zip(weights).map(|(p, w)| p.x * w).sum(),
                y: controls.iter().zip(weights).map(|(p, w)| p.y * w).sum(),
            });
        }
    }
    samples
}

#[test]
fn edges_never_cross_boxes_or_labels() {
    for seed in 0..40 {
        let graph = random_graph(seed, 3 + seed % 20, seed * 2 % 45, seed % 2 == 0);
        let placed = layout(&graph);
        for edge in &placed.edges {
            let EdgeRoute::Polyline(points) = &edge.route else {
                continue;
            };
            let obstacles: Vec<Rect> = placed
                .nodes
                .iter()
                .map(|n| n.rect)
                .chain(
                    placed
                        .edges
                        .iter()
                        .filter_map(|e| e.label.as_ref())
                        .map(|l| l.rect),
                )
                .collect();
            for sample in sample_route(points) {
                for &r in &obstacles {
                    // Shrunk by a pixel: endpoints legitimately touch their own boxes' borders.
                    let inside = sample.x > r.x + 1.0
                        && sample.x < r.right() - 1.0
                        && sample.y > r.y + 1.0
                        && sample.y < r.bottom() - 1.0;
                    assert!(
                        !inside,
                        "seed {seed}: edge {:?} passes through {r:?} at {sample:?}",
                        edge.edge
                    );
                }
            }
        }
    }
}

#[test]
fn random_layouts_have_no_overlaps() {
    for seed in 0..60 {
        let nodes = 2 + seed % 30;
        let edges = seed * 3 % 70;
        let graph = random_graph(seed, nodes, edges, seed % 3 != 0);
        let placed = layout(&graph);
        assert_eq!(placed.nodes.len(), graph.nodes.len());
        assert_geometry(&graph, &placed, &format!("seed {seed}"));
    }
}

#[test]
fn cycles_self_loops_and_parallel_edges_are_routed() {
    let mut graph = RefGraph::new();
    for i in 0..4 {
        graph.add_node(RefNodeId(i), "node", format!("#{i}"), NodeKind::Normal);
    }
    graph.add_edge(RefNodeId(0), RefNodeId(1), "a");
    graph.add_edge(RefNodeId(1), RefNodeId(2), "b");
    graph.add_edge(RefNodeId(2), RefNodeId(0), "back");
    graph.add_edge(RefNodeId(2), RefNodeId(3), "");
    graph.add_edge(RefNodeId(3), RefNodeId(2), "");
    graph.add_edge(RefNodeId(3), RefNodeId(3), "me");
    graph.add_edge(RefNodeId(3), RefNodeId(3), "again");
    graph.add_edge(RefNodeId(0), RefNodeId(1), "a2");
    let placed = layout(&graph);
    assert_geometry(&graph, &placed, "cycle");
    // Two self-loops share one drawn loop; every other edge is routed separately.
    assert_eq!(placed.edges.len(), graph.edges.len() - 1);
    let loop_label = placed
        .edges
        .iter()
        .find(|e| matches!(e.route, EdgeRoute::SelfLoop(_)))
        .and_then(|e| e.label.as_ref())
        .map(|l| l.text.as_str());
    assert_eq!(loop_label, Some("me, again"));
    // Parallel edges must not be drawn on top of each other.
    let starts: Vec<Point> = placed
        .edges
        .iter()
        .filter(|e| {
            graph.edges[e.edge.index()].from == RefNodeId(0)
                && graph.edges[e.edge.index()].to == RefNodeId(1)
        })
        .filter_map(|e| match &e.route {
            EdgeRoute::Polyline(points) => points.first().copied(),
            EdgeRoute::SelfLoop(_) => None,
        })
        .collect();
    assert_eq!(starts.len(), 2);
    assert_ne!(starts[0], starts[1]);
    // A pure cycle with no sources still lays out on distinct rows.
    let mut ring = RefGraph::new();
    for i in 0..5 {
        ring.add_node(RefNodeId(i), "cell", "", NodeKind::Normal);
        ring.add_edge(RefNodeId(i), RefNodeId((i + 1) % 5), "");
    }
    let placed = layout(&ring);
    assert_geometry(&ring, &placed, "ring");
    let mut rows: Vec<i64> = placed
        .nodes
        .iter()
        .map(|n| n.rect.y.round() as i64)
        .collect();
    rows.dedup();
    assert_eq!(rows.len(), 5, "each ring member gets its own layer");
}

#[test]
fn roots_are_above_targets_in_a_backref_chain() {
    let placed = layout(&backref_chain());
    let y = |i: usize| placed.nodes[i].rect.y;
    assert!(y(0) < y(1) && y(1) < y(2));
}

#[test]
fn layout_scales_to_a_few_hundred_nodes() {
    let graph = random_graph(99, 300, 450, true);
    let started = Instant::now();
    let placed = layout(&graph);
    let elapsed = started.elapsed();
    assert_geometry(&graph, &placed, "large");
    // Debug build on a shared 2-core machine; release is much faster.
    assert!(elapsed < Duration::from_secs(20), "layout took {elapsed:?}");
}

fn decode(png: &[u8]) -> Pixmap {
    Pixmap::decode_png(png).unwrap_or_else(|e| panic!("PNG does not decode: {e}"))
}

/// Counts pixels in a region that are much darker than the light background.
fn dark_pixels(pixmap: &Pixmap, x0: u32, y0: u32, x1: u32, y1: u32) -> usize {
    let mut count = 0;
    for y in y0..y1.min(pixmap.height()) {
        for x in x0..x1.min(pixmap.width()) {
            if let Some(p) = pixmap.pixel(x, y) {
                let luma =
                    (u32::from(p.red()) * 3 + u32::from(p.green()) * 6 + u32::from(p.blue())) / 10;
                if luma < 90 {
                    count += 1;
                }
            }
        }
    }
    count
}

#[test]
fn png_decodes_and_draws_text_with_the_embedded_font() {
    let graph = backref_chain();
    let options = PngOptions {
        system_fonts: false,
        scale: 1.0,
        ..PngOptions::default()
    };
    let png = to_png_with(&graph, &options).unwrap_or_else(|e| panic!("{e}"));
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
    let pixmap = decode(&png);
    let placed = layout(&graph);
    assert_eq!(pixmap.width(), placed.width.ceil() as u32);
    let background = pixmap.pixel(0, 0).map(|p| (p.red(), p.green(), p.blue()));
    assert_eq!(background, Some((255, 255, 255)));
    let non_background = pixmap
        .pixels()
        .iter()
        .filter(|p| (p.red(), p.green(), p.blue()) != (255, 255, 255))
        .count();
    assert!(non_background > 1000, "only {non_background} drawn pixels");
    // Text inside the first box: the title is dark on a light fill, so glyphs show as dark pixels.
    let r = placed.nodes[0].rect;
    let inner = dark_pixels(
        &pixmap,
        r.x as u32 + 4,
        r.y as u32 + 4,
        r.right() as u32 - 4,
        r.bottom() as u32 - 4,
    );
    assert!(
        inner > 30,
        "no text rendered in the root box ({inner} dark pixels)"
    );

    // Default options (system fonts, 1.5x) also work.
    let pixmap = decode(&to_png(&graph).unwrap_or_else(|e| panic!("{e}")));
    assert_eq!(pixmap.width(), (placed.width * 1.5).ceil() as u32);
}

#[test]
fn empty_graph_renders_everywhere() {
    let graph = RefGraph::new();
    check_dot_syntax(&to_dot(&graph));
    let svg = to_svg(&graph);
    roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("invalid XML: {e}"));
    assert!(svg.contains("no objects"));
    let png = to_png(&graph).unwrap_or_else(|e| panic!("{e}"));
    assert!(decode(&png).width() > 0);
}

#[test]
fn huge_canvases_are_scaled_down_or_refused() {
    let fan_out = |width: u64| {
        let mut graph = RefGraph::new();
        let root = graph.add_node(RefNodeId(0), "module", "", NodeKind::Root);
        for i in 1..=width {
            graph.add_node(
                RefNodeId(i),
                "myapp.models.SomeLongClassName",
                "len 1",
                NodeKind::Normal,
            );
            graph.add_edge(root, RefNodeId(i), "");
        }
        graph
    };
    let options = PngOptions {
        system_fonts: false,
        ..PngOptions::default()
    };
    // (Scaling down to fit is unit-tested in png.rs; rasterizing a 16k-px image here would be
    // slow in unoptimized test builds.)
    // 400 would need a scale too small to read: a typed error rather than a useless image.
    assert!(matches!(
        to_png_with(&fan_out(400), &options),
        Err(RenderError::ImageTooLarge { .. })
    ));
}

#[test]
fn format_detection_and_file_output() {
    assert_eq!(
        GraphFormat::from_path(Path::new("a/b.SVG")).ok(),
        Some(GraphFormat::Svg)
    );
    assert_eq!(
        GraphFormat::from_path(Path::new("x.gv")).ok(),
        Some(GraphFormat::Dot)
    );
    assert!(matches!(
        GraphFormat::from_path(Path::new("x.jpg")),
        Err(RenderError::UnknownFormat { .. })
    ));
    assert!(matches!(
        GraphFormat::from_path(Path::new("noext")),
        Err(RenderError::UnknownFormat { .. })
    ));

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let graph = backref_chain();
    let options = RenderOptions {
        system_fonts: false,
        ..RenderOptions::default()
    };
    for name in ["g.dot", "g.svg", "g.png"] {
        let path = dir.path().join(name);
        let renderer =
            render_to_file(&graph, &path, &options).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(renderer, Renderer::Builtin);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(!bytes.is_empty());
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        leftovers.len(),
        3,
        "temporary files left behind: {leftovers:?}"
    );
    let missing_dir = dir.path().join("nope").join("g.svg");
    assert!(matches!(
        render_to_file(&graph, &missing_dir, &options),
        Err(RenderError::Io { .. })
    ));
}

#[cfg(unix)]
fn fake_program(dir: &Path, name: &str, script: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("{e}"));
    path
}

#[cfg(unix)]
#[test]
fn graphviz_is_used_when_preferred_and_falls_back_on_failure() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let graph = backref_chain();
    let with_program = |program: std::path::PathBuf| RenderOptions {
        prefer_graphviz: true,
        graphviz_program: Some(program),
        graphviz_timeout: Duration::from_millis(500),
        system_fonts: false,
        ..RenderOptions::default()
    };

    // A working "dot" that echoes its input inside an SVG proves the dot source was piped in.
    let good = fake_program(
        dir.path(),
        "good-dot",
        r#"[ "$1" = "-Tsvg" ] || exit 3; printf '<svg xmlns="http://www.w3.org/2000/svg"><!--'; cat; printf -- '--></svg>'"#,
    );
    let rendered =
        render(&graph, GraphFormat::Svg, &with_program(good)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rendered.renderer, Renderer::Graphviz);
    let text = String::from_utf8_lossy(&rendered.bytes);
    assert!(text.contains("digraph heapsight"), "{text}");

    let failing = fake_program(dir.path(), "bad-dot", "cat >/dev/null; echo broken; exit 1");
    let garbage = fake_program(
        dir.path(),
        "garbage-dot",
        "cat >/dev/null; echo not an image",
    );
    let slow = fake_program(dir.path(), "slow-dot", "exec sleep 30");
    for program in [failing, garbage, slow, dir.path().join("missing-dot")] {
        let started = Instant::now();
        for format in [GraphFormat::Svg, GraphFormat::Png] {
            let rendered = render(&graph, format, &with_program(program.clone()))
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(rendered.renderer, Renderer::Builtin, "{program:?}");
            match format {
                GraphFormat::Png => assert!(rendered.bytes.starts_with(b"\x89PNG")),
                _ => {
                    assert!(String::from_utf8_lossy(&rendered.bytes)
                        .contains("heapsight reference graph"))
                }
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "fallback waited too long for {program:?}"
        );
    }

    // Dot output never involves graphviz.
    let dot = render(
        &graph,
        GraphFormat::Dot,
        &with_program(dir.path().join("missing-dot")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(dot.renderer, Renderer::Builtin);
}
