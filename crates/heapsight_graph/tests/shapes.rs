// Naive reference code indexes several parallel tables by node number on purpose.
#![allow(clippy::needless_range_loop)]

mod common;

use common::{heap, Heap, Rng};
use heapsight_graph::{
    accumulation_point, path_steps, percent, retainer_shapes, shortest_paths_and_shapes,
    shortest_paths_from_roots, DominatorTree, Graph, ShapeIndex, ShapeReport, ShapeStep, Step,
};
use heapsight_snapshot::model::{LabelKind, NodeIdx, RootKind, SnapshotBuilder};

fn instances_of(h: &Heap, type_name: &str) -> Vec<NodeIdx> {
    (0..h.snapshot.n_nodes() as u32)
        .map(NodeIdx)
        .filter(|&n| h.snapshot.type_name(n) == type_name)
        .collect()
}

fn shapes_of(h: &Heap, type_name: &str) -> ShapeReport {
    let graph = Graph::new(&h.snapshot).expect("valid snapshot");
    let tree = shortest_paths_from_roots(&graph);
    let targets = instances_of(h, type_name);
    let report = retainer_shapes(&h.snapshot, &tree, &targets);
    // The shapes computed during the search must be the ones computed on demand.
    let (eager_tree, memo) = shortest_paths_and_shapes(&graph);
    let eager = ShapeIndex::with_memo(&h.snapshot, &eager_tree, memo).shapes(&targets);
    assert_eq!(eager, report, "shapes computed during the search differ");
    report
}

/// Data-driven check: one `count bytes shape` line per group, then
/// `unreachable count bytes`.
fn check_shapes(text: &str, type_name: &str, expected: &str) {
    let h = heap(text);
    let report = shapes_of(&h, type_name);
    let mut actual: Vec<String> = report
        .groups
        .iter()
        .map(|g| format!("{} {} {}", g.count, g.bytes, g.text()))
        .collect();
    actual.push(format!(
        "unreachable {} {}",
        report.unreachable_count, report.unreachable_bytes
    ));
    let expected: Vec<String> = expected
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    assert_eq!(actual, expected, "\nheap:\n{text}");
    let grouped: u64 = report.groups.iter().map(|g| g.count).sum();
    assert_eq!(grouped + report.unreachable_count, report.total_count);
}

const SESSIONS: &str = "
    m: module 50
    md: dict 100
    sessions: dict 300
    history: list 80
    s1: app.UserSession 40
    s2: app.UserSession 40
    s3: app.UserSession 40
    s4: app.UserSession 48
    lost: app.UserSession 40
    root module app = m
    m.__dict__ -> md
    md['_SESSIONS'] -> sessions
    md['_HISTORY'] -> history
    sessions['a'] -> s1
    sessions['b'] -> s2
    sessions[repr:3] -> s3
    history[0] -> s4
    history[1] -> s1
";

#[test]
fn shapes_group_keys_and_indices() {
    check_shapes(
        SESSIONS,
        "app.UserSession",
        "
        3 120 module app: ._SESSIONS[*] -> app.UserSession
        1 48 module app: ._HISTORY[*] -> app.UserSession
        unreachable 1 40
        ",
    );
}

#[test]
fn headline_and_structured_steps() {
    let h = heap(SESSIONS);
    let report = shapes_of(&h, "app.UserSession");
    assert_eq!(
        report.headline("UserSession").as_deref(),
        Some("60% of UserSession are held by module app: ._SESSIONS[*]")
    );
    assert_eq!(
        report.groups[0].steps,
        vec![
            ShapeStep::Root {
                kind: RootKind::Module,
                name: "app".into()
            },
            ShapeStep::Attr("_SESSIONS".into()),
            ShapeStep::Any,
        ]
    );
    assert_eq!(report.groups[0].target_type, "app.UserSession");
    assert_eq!(report.total_count, 5);
    assert_eq!(report.total_bytes, 208);
    assert_eq!(ShapeReport::default().headline("x"), None);
}

#[test]
fn accumulation_point_is_the_sessions_dict() {
    let h = heap(SESSIONS);
    let graph = Graph::new(&h.snapshot).expect("valid snapshot");
    let paths = shortest_paths_from_roots(&graph);
    let dominators = DominatorTree::compute(&graph);
    let targets = instances_of(&h, "app.UserSession");
    let point = accumulation_point(&h.snapshot, &dominators, &paths, &targets).expect("found");
    // s1 is held by both containers, so only the module dict dominates it; the
    // sessions dict dominates s2 and s3, the history list only s4. The module dict
    // dominates s1..s4 and is the deepest node that does.
    assert_eq!(point.node, h.node("md"));
    assert_eq!(point.dominated_targets, 4);
    assert_eq!(point.total_targets, 5);
    assert_eq!(point.path, vec!["module app", ".__dict__", "dict"]);
    assert_eq!(point.retained_bytes, 100 + 300 + 80 + 40 * 3 + 48);

    // Without the shared reference, the sessions dict holds the most.
    let unshared = SESSIONS.replace("history[1] -> s1", "");
    let h = heap(&unshared);
    let graph = Graph::new(&h.snapshot).expect("valid snapshot");
    let paths = shortest_paths_from_roots(&graph);
    let dominators = DominatorTree::compute(&graph);
    let targets = instances_of(&h, "app.UserSession");
    let point = accumulation_point(&h.snapshot, &dominators, &paths, &targets).expect("found");
    assert_eq!(point.node, h.node("md"));
    let only_sessions: Vec<NodeIdx> = ["s1", "s2", "s3", "lost"]
        .iter()
        .map(|n| h.node(n))
        .collect();
    let point =
        accumulation_point(&h.snapshot, &dominators, &paths, &only_sessions).expect("found");
    assert_eq!(point.node, h.node("sessions"));
    assert_eq!(point.dominated_targets, 3);
    assert_eq!(point.path, vec!["module app", "._SESSIONS", "dict"]);
    assert_eq!(point.retained_bytes, 300 + 120);
}

#[test]
fn no_accumulation_point_when_only_the_super_root_dominates() {
    let h = heap(
        "
        a: app.X
        b: app.X
        root module m = a
        root module n = b
        ",
    );
    let graph = Graph::new(&h.snapshot).expect("valid snapshot");
    let paths = shortest_paths_from_roots(&graph);
    let dominators = DominatorTree::compute(&graph);
    let targets = instances_of(&h, "app.X");
    assert_eq!(
        accumulation_point(&h.snapshot, &dominators, &paths, &targets),
        None
    );
}

#[test]
fn external_roots_group_by_type_and_locals_keep_names() {
    check_shapes(
        "
        x1: dict
        x2: dict
        x3: list
        f: frame
        a: app.T 10
        b: app.T 10
        c: app.T 10
        d: app.T 10
        e: app.T 10
        root external = x1
        root external = x2
        root external = x3
        root thread Worker = f
        x1['p'] -> a
        x2['q'] -> b
        x3[0] -> c
        f local t -> d
        f local u -> e
        ",
        "app.T",
        "
        2 20 native ref dict: [*] -> app.T
        1 10 native ref list: [*] -> app.T
        1 10 thread Worker: local 't' -> app.T
        1 10 thread Worker: local 'u' -> app.T
        unreachable 0 0
        ",
    );
}

#[test]
fn attributes_stay_named_and_unnamed_refs_show_types() {
    check_shapes(
        "
        m: module
        c: app.Cache 10
        i1: app.Item 5
        i2: app.Item 5
        cell: cell 1
        cd: dict
        l: list
        root module app = m
        m.cache -> c
        c.__dict__ -> cd
        cd['entries'] -> l
        l[0] -> i1
        l[1] -> i2
        m.hook -> cell
        cell -> i3
        i3: app.Item 7
        ",
        "app.Item",
        "
        2 10 module app: .cache.entries[*] -> app.Item
        1 7 module app: .hook->app.Item -> app.Item
        unreachable 0 0
        ",
    );
}

#[test]
fn percentages_never_round_to_the_extremes() {
    assert_eq!(percent(97, 100), "97%");
    assert_eq!(percent(1, 1000), "<1%");
    assert_eq!(percent(999, 1000), ">99%");
    assert_eq!(percent(5, 5), "100%");
    assert_eq!(percent(0, 0), "0%");
}

/// The shape of a rendered path, spelled out step by step: the reference the
/// memoized shape trie must agree with.
fn shape_from_steps(steps: &[Step]) -> Vec<ShapeStep> {
    steps
        .iter()
        .filter_map(|step| match step {
            Step::Root { kind, name } => Some(ShapeStep::Root {
                kind: *kind,
                name: name.clone(),
            }),
            Step::Attr(a) => Some(ShapeStep::Attr(a.clone())),
            Step::Key(_) | Step::KeyRepr(_) | Step::Index(_) | Step::SetItem => {
                Some(ShapeStep::Any)
            }
            Step::Local(l) => Some(ShapeStep::Local(l.clone())),
            Step::KeyObject => Some(ShapeStep::KeyObject),
            Step::Unnamed(t) => Some(ShapeStep::Unnamed(t.clone())),
            Step::Target(_) => None,
        })
        .collect()
}

#[test]
fn memoized_shapes_match_rendered_paths_on_random_heaps() {
    let mut rng = Rng::new(2024);
    for case in 0..200 {
        let mut b = SnapshotBuilder::new();
        let n = 1 + rng.below(40) as usize;
        let types = ["dict", "module", "app.A", "list"];
        let nodes: Vec<NodeIdx> = (0..n)
            .map(|_| b.node(types[rng.below(4) as usize], 1 + rng.below(50)))
            .collect();
        for _ in 0..rng.below(3 * n as u64 + 1) {
            let s = nodes[rng.below(n as u64) as usize];
            let t = nodes[rng.below(n as u64) as usize];
            match rng.below(7) {
                0 | 1 => b.edge_named(s, t, LabelKind::Attr, "__dict__"),
                2 => b.edge_named(s, t, LabelKind::Key, &format!("k{}", rng.below(3))),
                3 => b.edge_named(s, t, LabelKind::Attr, "x"),
                4 => b.edge(s, t, LabelKind::Index, rng.below(3) as u32),
                5 => b.edge_named(s, t, LabelKind::Local, "v"),
                _ => b.edge(s, t, LabelKind::None, 0),
            }
        }
        let kinds = [RootKind::Module, RootKind::Thread, RootKind::External];
        for r in 0..rng.below(4) {
            let node = nodes[rng.below(n as u64) as usize];
            b.root(kinds[rng.below(3) as usize], node, &format!("r{r}"), 1);
        }
        let snapshot = b.finish();
        let graph = Graph::new(&snapshot).expect("valid snapshot");
        let paths = shortest_paths_from_roots(&graph);
        let mut index = ShapeIndex::new(&snapshot, &paths);
        // Visit in a shuffled order so memoized prefixes are reused from every side.
        let mut order: Vec<NodeIdx> = nodes.clone();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        for &node in &order {
            let expected = paths
                .path_to(node)
                .map(|p| shape_from_steps(&path_steps(&snapshot, &p)));
            assert_eq!(
                index.steps_of(node),
                expected,
                "case {case}, node {}",
                node.0
            );
        }
        let report = index.shapes(&nodes);
        let grouped: u64 = report.groups.iter().map(|g| g.count).sum();
        assert_eq!(grouped + report.unreachable_count, n as u64);
        // A limit keeps the most common groups and accounts for the rest.
        let limit = rng.below(4) as usize;
        let top = index.top_shapes(&nodes, limit);
        assert_eq!(top.groups.len(), report.groups.len().min(limit));
        assert_eq!(
            top.omitted_groups as usize,
            report.groups.len() - top.groups.len()
        );
        let kept: u64 = top.groups.iter().map(|g| g.count).sum();
        assert_eq!(kept + top.omitted_count + top.unreachable_count, n as u64);
        let counts: Vec<u64> = report.groups.iter().map(|g| g.count).take(limit).collect();
        assert_eq!(
            top.groups.iter().map(|g| g.count).collect::<Vec<_>>(),
            counts
        );
        for g in &report.groups {
            assert_eq!(
                index.holder_of(g.example).as_deref(),
                Some(g.holder.as_str())
            );
        }
    }
}

#[test]
fn shapes_computed_during_the_search_match_shapes_computed_on_demand() {
    let mut rng = Rng::new(0x5ba9e);
    for _ in 0..300 {
        let n = 1 + rng.below(60) as usize;
        let edges = rng.below(3 * n as u64 + 1) as usize;
        let n_roots = rng.below(5) as usize;
        let s = common::random_snapshot(&mut rng, n, edges, n_roots);
        let graph = Graph::new(&s).expect("valid snapshot");
        let tree = shortest_paths_from_roots(&graph);
        let (eager_tree, memo) = shortest_paths_and_shapes(&graph);
        let mut eager = ShapeIndex::with_memo(&s, &eager_tree, memo);
        let mut lazy = ShapeIndex::new(&s, &tree);
        let all: Vec<NodeIdx> = (0..n as u32).map(NodeIdx).collect();
        for type_name in ["dict", "list", "app.A", "app.B", "str"] {
            let targets: Vec<NodeIdx> = all
                .iter()
                .copied()
                .filter(|&v| s.type_name(v) == type_name)
                .collect();
            assert_eq!(eager.shapes(&targets), lazy.shapes(&targets));
            assert_eq!(eager.top_shapes(&targets, 2), lazy.top_shapes(&targets, 2));
        }
        assert_eq!(eager.shapes(&all), lazy.shapes(&all));
        for &v in &all {
            assert_eq!(eager.holder_of(v), lazy.holder_of(v));
        }
    }
}
