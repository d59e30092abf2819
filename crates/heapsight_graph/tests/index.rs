//! `GraphIndex` on two threads gives exactly what its parts give one after the other.

mod common;

use common::{heap, random_snapshot, Rng};
use heapsight_graph::{
    shortest_paths_from_roots, DominatorTree, Graph, GraphIndex, ShapeIndex, Threads,
};
use heapsight_snapshot::model::{NodeIdx, Snapshot};

/// Compares `index` with the dominator tree, paths and on-demand shapes computed by
/// the separate, sequential entry points.
fn assert_matches_parts(s: &Snapshot, index: &GraphIndex) {
    let graph = Graph::new(s).expect("valid snapshot");
    let tree = DominatorTree::compute(&graph);
    let paths = shortest_paths_from_roots(&graph);
    let n = s.n_nodes();
    assert_eq!(index.graph.n_nodes(), n);
    assert_eq!(index.graph.n_edges(), graph.n_edges());
    assert_eq!(index.dominators.total_size(), tree.total_size());
    assert_eq!(index.dominators.top_retained(5), tree.top_retained(5));
    assert!(index.paths.has_shapes());
    for v in 0..n as u32 {
        let v = NodeIdx(v);
        assert_eq!(
            index.graph.predecessors(v).collect::<Vec<_>>(),
            graph.predecessors(v).collect::<Vec<_>>(),
            "predecessors of {v:?}"
        );
        assert_eq!(
            index.dominators.immediate_dominator(v),
            tree.immediate_dominator(v),
            "idom of {v:?}"
        );
        assert_eq!(
            index.dominators.retained_size(v),
            tree.retained_size(v),
            "retained size of {v:?}"
        );
        assert_eq!(
            index.dominators.is_reachable_from_roots(v),
            tree.is_reachable_from_roots(v)
        );
        assert_eq!(index.paths.path_to(v), paths.path_to(v), "path to {v:?}");
    }
    let mut eager = index.shape_index();
    let mut lazy = ShapeIndex::new(s, &paths);
    let all: Vec<NodeIdx> = (0..n as u32).map(NodeIdx).collect();
    for type_name in ["dict", "list", "app.A", "app.B", "str", "object"] {
        let targets: Vec<NodeIdx> = all
            .iter()
            .copied()
            .filter(|&v| s.type_name(v) == type_name)
            .collect();
        assert_eq!(eager.shapes(&targets), lazy.shapes(&targets));
        assert_eq!(eager.top_shapes(&targets, 2), lazy.top_shapes(&targets, 2));
        assert_eq!(
            index.dominators.most_dominating(&targets),
            tree.most_dominating(&targets)
        );
    }
    for &v in &all {
        assert_eq!(eager.holder_of(v), lazy.holder_of(v));
    }
}

#[test]
fn two_threads_match_the_sequential_parts_on_random_graphs() {
    let mut rng = Rng::new(0x7411);
    for _ in 0..300 {
        let n = 1 + rng.below(80) as usize;
        let edges = rng.below(3 * n as u64 + 1) as usize;
        let n_roots = rng.below(5) as usize;
        let s = random_snapshot(&mut rng, n, edges, n_roots);
        for threads in [Threads::Two, Threads::One] {
            let index = GraphIndex::build_with(&s, threads).expect("valid snapshot");
            assert_matches_parts(&s, &index);
        }
    }
}

#[test]
fn two_threads_match_the_sequential_parts_on_a_bigger_graph() {
    let mut rng = Rng::new(99);
    let s = random_snapshot(&mut rng, 20_000, 50_000, 40);
    let index = GraphIndex::build_with(&s, Threads::Two).expect("valid snapshot");
    assert_matches_parts(&s, &index);
}

#[test]
fn the_default_build_reads_shapes_it_computed() {
    let h = heap(
        "
        m: module
        md: dict
        c: dict
        a: app.A
        b: app.A
        root module app = m
        m.__dict__ -> md
        md['_CACHE'] -> c
        c['x'] -> a
        c['y'] -> b
        ",
    );
    let index = GraphIndex::build(&h.snapshot).expect("valid snapshot");
    let report = index.shape_index().shapes(&[h.node("a"), h.node("b")]);
    assert_eq!(report.groups.len(), 1);
    assert_eq!(report.groups[0].text(), "module app: ._CACHE[*] -> app.A");
    assert_matches_parts(&h.snapshot, &index);
}

#[test]
fn invalid_snapshots_are_rejected_on_either_path() {
    let mut s = random_snapshot(&mut Rng::new(5), 10, 20, 2);
    s.edges.offsets.pop();
    for threads in [Threads::Two, Threads::One] {
        assert!(GraphIndex::build_with(&s, threads).is_err());
    }
}

#[test]
fn empty_snapshot() {
    let s = Snapshot {
        edges: heapsight_snapshot::model::Edges {
            offsets: vec![0],
            ..Default::default()
        },
        ..Default::default()
    };
    for threads in [Threads::Two, Threads::One] {
        let index = GraphIndex::build_with(&s, threads).expect("an empty snapshot is valid");
        assert_eq!(index.dominators.n_nodes(), 0);
        assert_eq!(index.paths.path_to(NodeIdx(0)), None);
    }
}

#[test]
fn this_machine_has_a_threading_answer() {
    // Whatever the affinity mask, the default build works and matches the parts.
    let threads = Threads::available();
    assert!(matches!(threads, Threads::One | Threads::Two));
    let s = random_snapshot(&mut Rng::new(3), 50, 120, 3);
    assert_matches_parts(&s, &GraphIndex::build(&s).expect("valid snapshot"));
}
