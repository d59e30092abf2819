//! Renders a small objgraph-style backreference graph in every format.
//!
//! `cargo run -p heapsight_report --example sample_graph -- OUT_DIR [dark]`

use std::path::PathBuf;

use heapsight_report::{render_to_file, NodeKind, RefGraph, RefNodeId, RenderOptions, Theme};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out_dir = PathBuf::from(args.next().unwrap_or_else(|| ".".to_owned()));
    let theme = if args.next().as_deref() == Some("dark") {
        Theme::Dark
    } else {
        Theme::Light
    };

    let mut graph = RefGraph::new();
    let module = graph.add_node(RefNodeId(1), "module", "myapp.cache", NodeKind::Root);
    let globals = graph.add_node(RefNodeId(2), "dict", "len 42", NodeKind::Normal);
    let cache = graph.add_node(
        RefNodeId(3),
        "myapp.cache.LRUCache",
        "1.2 MiB",
        NodeKind::Normal,
    );
    let entries = graph.add_node(
        RefNodeId(4),
        "collections.OrderedDict",
        "len 10,000",
        NodeKind::Normal,
    );
    let request = graph.add_node(
        RefNodeId(5),
        "starlette.requests.Request",
        "",
        NodeKind::Target,
    );
    let scope = graph.add_node(RefNodeId(6), "dict", "len 17", NodeKind::Normal);
    let body = graph.add_node(
        RefNodeId(7),
        "bytes",
        "<script>alert(1)</script>",
        NodeKind::Target,
    );
    let thread = graph.add_node(RefNodeId(8), "thread", "MainThread", NodeKind::Root);
    let frame = graph.add_node(
        RefNodeId(9),
        "frame",
        "handle() app.py:88",
        NodeKind::Normal,
    );
    graph.add_edge(module, globals, "__dict__");
    graph.add_edge(globals, cache, "_cache");
    graph.add_edge(cache, entries, "_entries");
    graph.add_edge(entries, request, "'/api/users?id=7'");
    graph.add_edge(request, scope, "scope");
    graph.add_edge(scope, request, "\"request\"");
    graph.add_edge(scope, body, "body");
    graph.add_edge(thread, frame, "f_frame");
    graph.add_edge(frame, request, "f_locals['req']");
    graph.add_edge(cache, cache, "_self");
    graph.add_edge(module, cache, "default_cache");

    let options = RenderOptions {
        theme,
        ..RenderOptions::default()
    };
    for name in ["sample.dot", "sample.svg", "sample.png"] {
        let path = out_dir.join(name);
        let renderer = render_to_file(&graph, &path, &options)?;
        println!("{} ({renderer:?})", path.display());
    }
    Ok(())
}
