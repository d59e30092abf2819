// Naive reference code indexes several parallel tables by node number on purpose.
#![allow(clippy::needless_range_loop)]

mod common;

use common::{heap, naive_root_distances, random_snapshot, Rng};
use heapsight_graph::{
    path_steps, path_to_single, render_path, shortest_paths_from_roots, Graph, Path, Step,
};
use heapsight_snapshot::model::{NodeIdx, RootKind, Snapshot};

/// Data-driven check: the rendered shortest path to `target` (both the all-nodes BFS
/// and the single-target backward search), or `None` when no root reaches it.
fn check_path(text: &str, target: &str, expected: Option<&[&str]>) {
    let h = heap(text);
    let graph = Graph::new(&h.snapshot).expect("valid snapshot");
    let tree = shortest_paths_from_roots(&graph);
    let node = h.node(target);
    let from_tree = tree.path_to(node).map(|p| render_path(&h.snapshot, &p));
    let from_single = path_to_single(&graph, node).map(|p| render_path(&h.snapshot, &p));
    let expected: Option<Vec<String>> = expected.map(|e| e.iter().map(|s| s.to_string()).collect());
    assert_eq!(from_tree, expected, "forward BFS, heap:\n{text}");
    assert_eq!(from_single, expected, "backward search, heap:\n{text}");
}

const CACHE_HEAP: &str = "
    m: module 56
    md: dict 100
    c: dict 200
    s: app.UserSession 48
    root module app = m
    m.__dict__ -> md
    md['_CACHE'] -> c
    c['k'] -> s
";

#[test]
fn module_cache_path_collapses_the_module_dict() {
    check_path(
        CACHE_HEAP,
        "s",
        Some(&["module app", "._CACHE", "['k']", "app.UserSession"]),
    );
    check_path(CACHE_HEAP, "c", Some(&["module app", "._CACHE", "dict"]));
    check_path(CACHE_HEAP, "md", Some(&["module app", ".__dict__", "dict"]));
    check_path(CACHE_HEAP, "m", Some(&["module app", "module"]));
}

#[test]
fn structured_steps() {
    let h = heap(CACHE_HEAP);
    let graph = Graph::new(&h.snapshot).expect("valid snapshot");
    let path = shortest_paths_from_roots(&graph)
        .path_to(h.node("s"))
        .expect("reachable");
    assert_eq!(path.len(), 3);
    assert_eq!(
        path.nodes,
        vec![h.node("m"), h.node("md"), h.node("c"), h.node("s")]
    );
    assert_eq!(
        path_steps(&h.snapshot, &path),
        vec![
            Step::Root {
                kind: RootKind::Module,
                name: "app".into()
            },
            Step::Attr("_CACHE".into()),
            Step::Key("k".into()),
            Step::Target("app.UserSession".into()),
        ]
    );
}

#[test]
fn module_roots_win_over_nearer_external_roots() {
    let text = "
        m: module
        md: dict
        l: list
        x: dict
        t: app.Thing
        root module app = m
        root external = x
        m.__dict__ -> md
        md['_ITEMS'] -> l
        l[7] -> t
        x['t'] -> t
    ";
    check_path(
        text,
        "t",
        Some(&["module app", "._ITEMS", "[7]", "app.Thing"]),
    );
    check_path(text, "x", Some(&["native ref dict", "dict"]));
}

#[test]
fn external_roots_are_the_fallback() {
    check_path(
        "
        x: dict
        y: app.Thing
        root external = x
        x['it\\'s'] -> y
        ",
        "y",
        Some(&["native ref dict", "['it\\'s']", "app.Thing"]),
    );
}

#[test]
fn thread_locals_and_every_label_kind() {
    let text = "
        f: frame
        d: dict
        l: list
        s: set
        k: app.Key
        v: app.Value
        o: app.Other
        root thread MainThread = f
        f local req -> d
        d[repr:42] -> l
        l[3] -> s
        s {} -> k
        d <key> -> k
        k -> v
        v.__dict__ -> o
    ";
    check_path(
        text,
        "d",
        Some(&["thread MainThread", "local 'req'", "dict"]),
    );
    check_path(
        text,
        "l",
        Some(&["thread MainThread", "local 'req'", "[42]", "list"]),
    );
    check_path(
        text,
        "s",
        Some(&["thread MainThread", "local 'req'", "[42]", "[3]", "set"]),
    );
    // Via the set element takes 4 hops, via the key object 2.
    check_path(
        text,
        "k",
        Some(&["thread MainThread", "local 'req'", "<key>", "app.Key"]),
    );
    check_path(
        text,
        "v",
        Some(&[
            "thread MainThread",
            "local 'req'",
            "<key>",
            "->app.Value",
            "app.Value",
        ]),
    );
    // `__dict__` into something that is not a dict is an ordinary attribute.
    check_path(
        text,
        "o",
        Some(&[
            "thread MainThread",
            "local 'req'",
            "<key>",
            "->app.Value",
            ".__dict__",
            "app.Other",
        ]),
    );
}

#[test]
fn set_items_render_as_item() {
    check_path(
        "
        m: module
        s: set
        x: app.X
        root module app = m
        m.SEEN -> s
        s {} -> x
        ",
        "x",
        Some(&["module app", ".SEEN", "{item}", "app.X"]),
    );
}

#[test]
fn instance_dict_collapses_but_not_before_a_repr_key() {
    let text = "
        m: module
        i: app.Service
        d: dict
        a: list
        b: str
        root module app = m
        m.svc -> i
        i.__dict__ -> d
        d['items'] -> a
        d[repr:1] -> b
    ";
    check_path(text, "a", Some(&["module app", ".svc", ".items", "list"]));
    check_path(
        text,
        "b",
        Some(&["module app", ".svc", ".__dict__", "[1]", "str"]),
    );
}

#[test]
fn unreachable_nodes_have_no_path() {
    check_path(
        "
        m: module
        g: list
        h: list
        root module app = m
        g -> h
        h -> g
        ",
        "g",
        None,
    );
}

#[test]
fn single_target_search_prefers_modules_over_threads_at_equal_distance() {
    check_path(
        "
        f: frame
        m: module
        x: app.X
        root thread T = f
        root module app = m
        f local x -> x
        m.x -> x
        ",
        "x",
        Some(&["module app", ".x", "app.X"]),
    );
}

fn assert_valid(snapshot: &Snapshot, path: &Path, target: NodeIdx) {
    assert_eq!(path.nodes.len(), path.edges.len() + 1);
    assert_eq!(path.target(), Some(target));
    assert_eq!(snapshot.roots[path.root.index()].node, path.nodes[0]);
    for (i, e) in path.edges.iter().enumerate() {
        let range = snapshot.edges.range_of(path.nodes[i]);
        assert!(
            range.contains(&e.index()),
            "edge {i} leaves node {:?}",
            path.nodes[i]
        );
        assert_eq!(snapshot.edges.targets[e.index()], path.nodes[i + 1]);
    }
}

#[test]
fn random_graphs_paths_are_shortest_and_valid() {
    let mut rng = Rng::new(7);
    for _ in 0..300 {
        let n = 1 + rng.below(40) as usize;
        let edges = rng.below(3 * n as u64 + 1) as usize;
        let n_roots = rng.below(5) as usize;
        let s = random_snapshot(&mut rng, n, edges, n_roots);
        let dist = naive_root_distances(&s);
        let graph = Graph::new(&s).expect("valid snapshot");
        let tree = shortest_paths_from_roots(&graph);
        for v in 0..n {
            let node = NodeIdx(v as u32);
            let forward = tree.path_to(node);
            let backward = path_to_single(&graph, node);
            assert_eq!(
                forward.as_ref().map(Path::len),
                dist.get(&v).copied(),
                "node {v}"
            );
            assert_eq!(
                backward.as_ref().map(Path::len),
                dist.get(&v).copied(),
                "node {v}"
            );
            assert_eq!(tree.is_reachable(node), dist.contains_key(&v));
            for path in forward.iter().chain(backward.iter()) {
                assert_valid(&s, path, node);
                // Both searches must start from the same tier of root.
                let external = s.roots[path.root.index()].kind == RootKind::External;
                let tier0_reaches = s
                    .roots
                    .iter()
                    .any(|r| r.kind != RootKind::External && reaches(&s, r.node, node));
                assert_eq!(external, !tier0_reaches, "node {v}");
            }
            assert_eq!(
                forward.as_ref().map(|p| p.root),
                tree.root_of_path(node),
                "root_of_path agrees with path_to"
            );
        }
    }
}

fn reaches(s: &Snapshot, from: NodeIdx, to: NodeIdx) -> bool {
    let mut seen = vec![false; s.n_nodes()];
    let mut stack = vec![from];
    while let Some(v) = stack.pop() {
        if v == to {
            return true;
        }
        if std::mem::replace(&mut seen[v.index()], true) {
            continue;
        }
        stack.extend(s.edges.targets[s.edges.range_of(v)].iter().copied());
    }
    false
}

#[test]
fn graph_predecessors_mirror_successors() {
    let mut rng = Rng::new(99);
    let s = random_snapshot(&mut rng, 60, 200, 3);
    let graph = Graph::new(&s).expect("valid snapshot");
    let mut forward = Vec::new();
    for v in 0..60u32 {
        for (e, t) in graph.successors(NodeIdx(v)) {
            forward.push((NodeIdx(v), e, t));
        }
    }
    let mut backward = Vec::new();
    for t in 0..60u32 {
        let preds: Vec<_> = graph.predecessors(NodeIdx(t)).collect();
        assert!(
            preds.windows(2).all(|w| w[0].0 <= w[1].0),
            "ordered by source"
        );
        assert_eq!(graph.in_degree(NodeIdx(t)), preds.len());
        for (src, e) in preds {
            backward.push((src, e, NodeIdx(t)));
        }
    }
    forward.sort();
    backward.sort();
    assert_eq!(forward, backward);
    assert_eq!(graph.n_edges(), 200);
}

#[test]
fn invalid_snapshots_are_rejected() {
    let mut h = heap("a -> b");
    h.snapshot.edges.targets[0] = NodeIdx(9);
    assert!(Graph::new(&h.snapshot).is_err());
}
