// Naive reference code indexes several parallel tables by node number on purpose.
#![allow(clippy::needless_range_loop)]

mod common;

use common::{augmented, heap, naive_dominator_sets, naive_idoms, random_snapshot, Heap, Rng};
use heapsight_graph::{DominatorTree, Graph};
use heapsight_snapshot::model::{NodeIdx, Snapshot};

fn dominators(snapshot: &Snapshot) -> DominatorTree {
    let graph = Graph::new(snapshot).expect("valid snapshot");
    DominatorTree::compute(&graph)
}

/// Data-driven check: every node's immediate dominator, one `node <- idom` line per
/// node in name order (`*` is the super-root).
fn check_idoms(text: &str, expected: &str) {
    let h = heap(text);
    let tree = dominators(&h.snapshot);
    let actual: Vec<String> = h
        .names
        .iter()
        .map(|(name, &node)| {
            let idom = tree
                .immediate_dominator(node)
                .map_or("*".to_owned(), |d| h.name_of(d));
            format!("{name} <- {idom}")
        })
        .collect();
    let expected: Vec<String> = expected
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    assert_eq!(actual, expected, "\nheap:\n{text}");
    compare_with_naive(&h.snapshot, &tree);
}

/// Checks `tree` against the naive dominator sets: idoms, children, retained sizes,
/// `dominates`, reachability and the accumulation point of a few target sets.
fn compare_with_naive(snapshot: &Snapshot, tree: &DominatorTree) {
    let g = augmented(snapshot);
    let dom = naive_dominator_sets(&g);
    let idoms = naive_idoms(&g, &dom);
    let n = g.n;
    for v in 0..n {
        let node = NodeIdx(v as u32);
        assert_eq!(
            tree.immediate_dominator(node).map(|d| d.index()),
            idoms[v],
            "idom of {v}"
        );
        let naive_retained: u64 = (0..n)
            .filter(|&w| dom[w][v])
            .map(|w| snapshot.nodes.size[w])
            .sum();
        assert_eq!(tree.retained_size(node), naive_retained, "retained of {v}");
        let mut children: Vec<usize> = tree
            .dominated_children(node)
            .iter()
            .map(|c| c.index())
            .collect();
        let sizes: Vec<u64> = children
            .iter()
            .map(|&c| tree.retained_size(NodeIdx(c as u32)))
            .collect();
        assert!(
            sizes.windows(2).all(|w| w[0] >= w[1]),
            "children sorted by retained size"
        );
        children.sort_unstable();
        let naive_children: Vec<usize> = (0..n).filter(|&w| idoms[w] == Some(v)).collect();
        assert_eq!(children, naive_children, "children of {v}");
        for w in 0..n {
            assert_eq!(
                tree.dominates(node, NodeIdx(w as u32)),
                dom[w][v],
                "{v} dominates {w}"
            );
        }
        assert_eq!(
            tree.is_reachable_from_roots(node),
            g.reachable[v],
            "reachability of {v}"
        );
    }
    let mut top: Vec<usize> = tree
        .super_root_children()
        .iter()
        .map(|c| c.index())
        .collect();
    top.sort_unstable();
    let naive_top: Vec<usize> = (0..n).filter(|&w| idoms[w].is_none()).collect();
    assert_eq!(top, naive_top);
    let total: u64 = snapshot.nodes.size.iter().sum();
    assert_eq!(tree.total_size(), total);

    let ranked = tree.top_retained(5);
    let mut all: Vec<u64> = (0..n)
        .map(|v| tree.retained_size(NodeIdx(v as u32)))
        .collect();
    all.sort_unstable_by(|a, b| b.cmp(a));
    let ranked_sizes: Vec<u64> = ranked.iter().map(|&(_, r)| r).collect();
    assert_eq!(ranked_sizes, all[..ranked.len()].to_vec());
    assert_eq!(ranked.len(), n.min(5));

    // Accumulation point: the naive count of targets strictly dominated per node.
    let target_sets: Vec<Vec<usize>> = vec![
        (0..n).collect(),
        (0..n).filter(|v| v % 3 == 0).collect(),
        (0..n).filter(|v| v % 2 == 1).take(2).collect(),
    ];
    for targets in target_sets {
        let counts: Vec<u64> = (0..n)
            .map(|a| targets.iter().filter(|&&t| t != a && dom[t][a]).count() as u64)
            .collect();
        let best = counts.iter().copied().max().unwrap_or(0);
        let nodes: Vec<NodeIdx> = targets.iter().map(|&t| NodeIdx(t as u32)).collect();
        match tree.most_dominating(&nodes) {
            None => assert_eq!(best, 0, "targets {targets:?}"),
            Some((node, count)) => {
                assert_eq!(count, best, "targets {targets:?}");
                assert_eq!(counts[node.index()], best);
                // Deepest: no node it strictly dominates covers as many.
                for w in 0..n {
                    if w != node.index() && dom[w][node.index()] {
                        assert!(
                            counts[w] < best,
                            "{w} is deeper than {} with as many",
                            node.0
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn lengauer_tarjan_paper_graph() {
    // Figure 1 of Lengauer & Tarjan (1979), with R as the only root.
    check_idoms(
        "
        root module r = R
        R -> A
        R -> B
        R -> C
        A -> D
        B -> A
        B -> D
        B -> E
        C -> F
        C -> G
        D -> L
        E -> H
        F -> I
        G -> I
        G -> J
        H -> E
        H -> K
        I -> K
        J -> I
        K -> I
        K -> R
        L -> H
        ",
        "
        A <- R
        B <- R
        C <- R
        D <- R
        E <- R
        F <- C
        G <- C
        H <- R
        I <- R
        J <- G
        K <- R
        L <- D
        R <- *
        ",
    );
}

#[test]
fn diamond() {
    check_idoms(
        "
        root module m = a
        a -> b
        a -> c
        b -> d
        c -> d
        d -> e
        ",
        "
        a <- *
        b <- a
        c <- a
        d <- a
        e <- d
        ",
    );
}

#[test]
fn loops_and_self_loops() {
    check_idoms(
        "
        root module m = a
        a -> b
        b -> b
        b -> c
        c -> d
        d -> b
        d -> e
        e -> e
        ",
        "
        a <- *
        b <- a
        c <- b
        d <- c
        e <- d
        ",
    );
}

#[test]
fn two_roots_share_a_node() {
    check_idoms(
        "
        root module m = a
        root thread t = b
        a -> x
        b -> x
        x -> y
        ",
        "
        a <- *
        b <- *
        x <- *
        y <- x
        ",
    );
}

#[test]
fn unreachable_nodes_attach_to_the_super_root() {
    // `g1 <-> g2` is a garbage cycle: g1 (lower index) is attached and retains g2.
    // `u` points into the reachable part, which does not change who dominates `x`.
    check_idoms(
        "
        a: object
        x: object
        g1: object
        g2: object
        u: object
        root module m = a
        a -> x
        g1 -> g2
        g2 -> g1
        g2 -> z
        u -> x
        ",
        "
        a <- *
        g1 <- *
        g2 <- g1
        u <- *
        x <- a
        z <- g2
        ",
    );
    let h = heap("a: object\ng1: object\ng2: object\nroot module m = a\ng1 -> g2\ng2 -> g1");
    let tree = dominators(&h.snapshot);
    assert!(tree.is_reachable_from_roots(h.node("a")));
    assert!(!tree.is_reachable_from_roots(h.node("g2")));
    assert_eq!(tree.retained_size(h.node("g1")), 32);
}

#[test]
fn no_roots_at_all() {
    check_idoms(
        "
        a -> b
        b -> c
        c -> a
        ",
        "
        a <- *
        b <- a
        c <- b
        ",
    );
}

#[test]
fn long_chain_does_not_overflow_the_stack() {
    let n = 300_000;
    let mut b = heapsight_snapshot::model::SnapshotBuilder::new();
    let nodes: Vec<NodeIdx> = (0..n).map(|_| b.node("object", 1)).collect();
    for w in nodes.windows(2) {
        b.edge(w[0], w[1], heapsight_snapshot::model::LabelKind::None, 0);
    }
    b.root(
        heapsight_snapshot::model::RootKind::Module,
        nodes[0],
        "m",
        0,
    );
    let s = b.finish();
    let tree = dominators(&s);
    assert_eq!(tree.retained_size(nodes[0]), n as u64);
    assert_eq!(tree.retained_size(nodes[n - 1]), 1);
    assert_eq!(tree.immediate_dominator(nodes[n - 1]), Some(nodes[n - 2]));
    assert_eq!(tree.depth(nodes[n - 1]), n);
    // All nodes as targets take the full pass; one target takes the walk.
    let all: Vec<NodeIdx> = nodes.clone();
    assert_eq!(tree.most_dominating(&all), Some((nodes[0], n as u64 - 1)));
    assert_eq!(
        tree.most_dominating(&[nodes[n - 1]]),
        Some((nodes[n - 2], 1))
    );
}

#[test]
fn random_graphs_match_naive_dominators() {
    let mut rng = Rng::new(0x5eed);
    for case in 0..600 {
        let n = 1 + rng.below(30) as usize;
        let density = rng.below(4) as usize;
        let edges = rng.below((n * (density + 1)) as u64 + 1) as usize;
        let n_roots = rng.below(4) as usize;
        let s = random_snapshot(&mut rng, n, edges, n_roots);
        let tree = dominators(&s);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            compare_with_naive(&s, &tree)
        }));
        if result.is_err() {
            panic!(
                "random case {case} failed: n={n}, edges={edges}, roots={:?}",
                s.roots
            );
        }
    }
}

#[test]
fn random_bigger_graphs_match_naive_dominators() {
    let mut rng = Rng::new(42);
    for _ in 0..40 {
        let n = 50 + rng.below(150) as usize;
        let edges = n + rng.below(2 * n as u64) as usize;
        let n_roots = 1 + rng.below(6) as usize;
        let s = random_snapshot(&mut rng, n, edges, n_roots);
        compare_with_naive(&s, &dominators(&s));
    }
}

#[test]
fn unused_heap_helper_names_resolve() {
    let h: Heap = heap("x: dict 10\nroot module m = x");
    assert_eq!(h.node("x"), NodeIdx(0));
    assert_eq!(h.snapshot.type_name(h.node("x")), "dict");
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
    let graph = Graph::new(&s).expect("an empty snapshot is valid");
    let tree = DominatorTree::compute(&graph);
    assert_eq!(tree.n_nodes(), 0);
    assert_eq!(tree.total_size(), 0);
    assert!(tree.top_retained(3).is_empty());
    assert!(tree.super_root_children().is_empty());
    assert_eq!(tree.most_dominating(&[]), None);
    assert_eq!(tree.immediate_dominator(NodeIdx(0)), None);
    let paths = heapsight_graph::shortest_paths_from_roots(&graph);
    assert_eq!(paths.path_to(NodeIdx(0)), None);
    assert_eq!(graph.path_to_single(NodeIdx(0)), None);
}
