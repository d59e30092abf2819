//! Timing on a large synthetic heap. Ignored by default; run with
//! `cargo test --release -p heapsight_analysis --test scale -- --ignored --nocapture`.

use std::time::Instant;

use heapsight_analysis::{build_report_with_index, HeapIndex, ReportOptions, SnapshotDiff};
use heapsight_snapshot::model::{
    node_flags, LabelKind, RootKind, Snapshot, SnapshotBuilder, NO_STR,
};

/// `n_modules` modules, each with a dict global of `per_module` instances, each
/// instance with a `__dict__` and a str value; B adds `leaked` sessions to one module.
fn heap(n_modules: u64, per_module: u64, leaked: u64) -> Snapshot {
    let mut b = SnapshotBuilder::new();
    let module_t = b.type_named("module");
    let dict_t = b.type_named("dict");
    let str_t = b.type_named("str");
    let item_t = b.type_named("app.Item");
    let session_t = b.type_named("app.UserSession");
    // Old objects and leaked ones live in separate address ranges, so that A's objects
    // keep their addresses in B.
    let mut address = 0x1000u64;
    let mut leaked_address = 0x7000_0000_0000u64;
    let mut next = |size: u64, leak: bool| {
        let cursor = if leak {
            &mut leaked_address
        } else {
            &mut address
        };
        *cursor += size.max(16).next_multiple_of(16);
        *cursor
    };
    let dict_key = b.intern("__dict__");
    let value_key = b.intern("value");
    for m in 0..n_modules {
        let name = b.intern(&format!("app.m{m}"));
        let module = b.add_node(
            next(72, false),
            module_t,
            72,
            node_flags::IS_MODULE,
            3,
            name,
            0,
        );
        b.root(RootKind::Module, module, &format!("app.m{m}"), 0);
        let globals = b.add_node(
            next(1200, false),
            dict_t,
            1200,
            node_flags::GC_TRACKED,
            1,
            NO_STR,
            0,
        );
        b.edge(module, globals, LabelKind::Attr, dict_key.0);
        let registry = b.add_node(
            next(4096, false),
            dict_t,
            4096,
            node_flags::GC_TRACKED,
            1,
            NO_STR,
            0,
        );
        b.edge_named(globals, registry, LabelKind::Key, "_REGISTRY");
        let count = per_module + if m == 0 { leaked } else { 0 };
        for i in 0..count {
            let leak = i >= per_module;
            let t = if leak { session_t } else { item_t };
            let obj = b.add_node(next(56, leak), t, 56, node_flags::GC_TRACKED, 1, NO_STR, 0);
            let attrs = b.add_node(
                next(104, leak),
                dict_t,
                104,
                node_flags::GC_TRACKED,
                1,
                NO_STR,
                0,
            );
            let value = b.add_node(next(60, leak), str_t, 60, 0, 1, NO_STR, 0);
            b.edge(obj, attrs, LabelKind::Attr, dict_key.0);
            b.edge(attrs, value, LabelKind::Key, value_key.0);
            b.edge(registry, obj, LabelKind::KeyRepr, value_key.0);
        }
    }
    b.finish()
}

#[test]
#[ignore = "timing on a large heap"]
fn two_million_objects() {
    let started = Instant::now();
    let a = heap(100, 6_000, 0);
    let b = heap(100, 6_000, 50_000);
    println!(
        "built A ({} nodes) and B ({} nodes) in {:?}",
        a.n_nodes(),
        b.n_nodes(),
        started.elapsed()
    );
    let t = Instant::now();
    let diff = SnapshotDiff::compute(&a, &b);
    println!("diff: {:?} ({} new)", t.elapsed(), diff.n_new);
    let t = Instant::now();
    let index = HeapIndex::build(&b).unwrap_or_else(|e| panic!("{e}"));
    println!("index (graph, dominators, paths): {:?}", t.elapsed());
    let t = Instant::now();
    let report = build_report_with_index(&a, &index, &[], &ReportOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    println!("report (diff, suspects, dominators): {:?}", t.elapsed());
    println!("top suspect: {}", report.suspects[0].headline);
    assert_eq!(report.suspects[0].type_name, "app.UserSession");
    assert_eq!(report.suspects[0].count_growth, 50_000);
    assert_eq!(diff.n_new, 150_000);
}
