//! Reference graphs: the objects that refer to a few start objects (or that they refer to),
//! a bounded number of steps away, as a [`RefGraph`] for the dot/SVG/PNG renderers.
//!
//! objgraph's `show_backrefs` semantics: breadth-first from the start objects, at most
//! `too_many` neighbours followed per object, backward searches stop at roots (a module, a
//! thread, a native reference) because the question "why is it alive" is answered there.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};

use heapsight_graph::{render, EdgeIdx, Graph};
use heapsight_report::{format_bytes, NodeKind, RefGraph, RefNodeId};
use heapsight_snapshot::{NodeIdx, Snapshot, NO_STR};

/// Which way the references are followed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Towards the referrers (`show_backrefs`): who keeps the objects alive.
    Back,
    /// Towards the referents (`show_refs`): what the objects keep alive.
    Forward,
}

/// How far a reference graph reaches; the defaults are objgraph's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefsOptions {
    /// Which way to follow references.
    pub direction: Direction,
    /// Steps away from the start objects.
    pub max_depth: usize,
    /// Neighbours followed per object; the rest are left out (objgraph's `too_many`).
    pub too_many: usize,
}

impl Default for RefsOptions {
    fn default() -> Self {
        RefsOptions {
            direction: Direction::Back,
            max_depth: 3,
            too_many: 10,
        }
    }
}

/// Title and subtitle of a node box: the type, then its name or length, and its size.
pub fn describe(snapshot: &Snapshot, node: NodeIdx) -> (String, String) {
    let i = node.index();
    let nodes = &snapshot.nodes;
    let mut subtitle = Vec::new();
    if let Some(name) = nodes
        .name
        .get(i)
        .filter(|s| **s != NO_STR)
        .and_then(|s| snapshot.str(*s))
    {
        subtitle.push(name.to_owned());
    }
    let length = nodes.length.get(i).copied().unwrap_or(0);
    if length > 0 {
        subtitle.push(format!("len {length}"));
    }
    subtitle.push(format_bytes(nodes.size.get(i).copied().unwrap_or(0)));
    (snapshot.type_name(node).to_owned(), subtitle.join(" · "))
}

/// The neighbourhood of `starts` (drawn as targets) up to `options.max_depth` steps, never
/// passing through a node for which `avoid` is true (the caller's own frames, in the API).
/// Node ids are snapshot node indices.
pub fn reference_graph(
    graph: &Graph<'_>,
    starts: &[NodeIdx],
    options: &RefsOptions,
    avoid: impl Fn(NodeIdx) -> bool,
) -> RefGraph {
    let snapshot = graph.snapshot();
    let mut drawn = RefGraph::new();
    let mut depth_of: HashMap<NodeIdx, usize> = HashMap::new();
    let mut queue = VecDeque::new();
    let id = |n: NodeIdx| RefNodeId(u64::from(n.0));
    let add = |drawn: &mut RefGraph, node: NodeIdx, kind: NodeKind| {
        let (title, subtitle) = describe(snapshot, node);
        drawn.add_node(id(node), title, subtitle, kind);
    };
    for &start in starts {
        if depth_of.insert(start, 0).is_none() {
            add(&mut drawn, start, NodeKind::Target);
            queue.push_back(start);
        }
    }
    while let Some(node) = queue.pop_front() {
        let depth = depth_of.get(&node).copied().unwrap_or(0);
        if graph.is_root(node) && options.direction == Direction::Back && depth > 0 {
            continue;
        }
        if depth >= options.max_depth {
            continue;
        }
        let neighbours: Vec<(NodeIdx, EdgeIdx)> = match options.direction {
            Direction::Back => graph.predecessors(node).collect(),
            Direction::Forward => graph.successors(node).map(|(e, n)| (n, e)).collect(),
        };
        let mut shown = 0usize;
        for (other, edge) in neighbours {
            if avoid(other) {
                continue;
            }
            if shown == options.too_many {
                break;
            }
            shown += 1;
            if let Entry::Vacant(slot) = depth_of.entry(other) {
                slot.insert(depth + 1);
                let kind = if graph.is_root(other) {
                    NodeKind::Root
                } else {
                    NodeKind::Normal
                };
                add(&mut drawn, other, kind);
                queue.push_back(other);
            }
            let label = render::single_edge_step(snapshot, edge).to_string();
            match options.direction {
                Direction::Back => drawn.add_edge(id(other), id(node), label),
                Direction::Forward => drawn.add_edge(id(node), id(other), label),
            }
        }
    }
    drawn
}

/// Every node whose type is exactly `type_name`, in snapshot order.
pub fn instances_of(snapshot: &Snapshot, type_name: &str) -> Vec<NodeIdx> {
    let wanted: Vec<bool> = snapshot
        .types
        .name
        .iter()
        .map(|s| snapshot.str(*s) == Some(type_name))
        .collect();
    snapshot
        .nodes
        .type_idx
        .iter()
        .enumerate()
        .filter(|(_, t)| wanted.get(t.index()).copied().unwrap_or(false))
        .map(|(i, _)| NodeIdx(i as u32))
        .collect()
}

/// At most `count` of `nodes`, evenly spread over the list (first and, when `count > 1`,
/// last included): instances created at different times are more likely to show the
/// different ways they are held than the first few in a row.
pub fn spread_sample(nodes: &[NodeIdx], count: usize) -> Vec<NodeIdx> {
    if count == 0 || nodes.is_empty() {
        return Vec::new();
    }
    if nodes.len() <= count {
        return nodes.to_vec();
    }
    if count == 1 {
        return vec![nodes[0]];
    }
    let last = nodes.len() - 1;
    (0..count).map(|k| nodes[k * last / (count - 1)]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use heapsight_snapshot::model::{LabelKind, RootKind, SnapshotBuilder};

    /// module app -> dict (__dict__) -> dict (_CACHE) -> 3 sessions
    fn leak() -> Snapshot {
        let mut b = SnapshotBuilder::new();
        let module_type = b.type_named("module");
        let app = b.intern("app");
        let module = b.add_node(0x100, module_type, 72, 0, 1, app, 0);
        let globals = b.node("dict", 360);
        let cache = b.node("dict", 640);
        let sessions: Vec<NodeIdx> = (0..3).map(|_| b.node("app.Session", 48)).collect();
        b.edge_named(module, globals, LabelKind::Attr, "__dict__");
        b.edge_named(globals, cache, LabelKind::Key, "_CACHE");
        for (k, s) in sessions.iter().enumerate() {
            b.edge_named(cache, *s, LabelKind::Key, &format!("u{k}"));
        }
        b.root(RootKind::Module, module, "app", 0);
        b.finish()
    }

    #[test]
    fn backrefs_reach_the_module_and_stop_there() {
        let snapshot = leak();
        let graph = Graph::new(&snapshot).expect("graph");
        let starts = instances_of(&snapshot, "app.Session");
        assert_eq!(starts.len(), 3);
        let drawn = reference_graph(&graph, &starts[..1], &RefsOptions::default(), |_| false);
        let titles: Vec<&str> = drawn.nodes.iter().map(|n| n.title.as_str()).collect();
        assert_eq!(titles, ["app.Session", "dict", "dict", "module"]);
        assert_eq!(drawn.nodes[0].kind, NodeKind::Target);
        assert_eq!(drawn.nodes[3].kind, NodeKind::Root);
        assert!(drawn.nodes[3].subtitle.starts_with("app"));
        let labels: Vec<&str> = drawn.edges.iter().map(|e| e.label.as_str()).collect();
        assert_eq!(labels, ["['u0']", "['_CACHE']", ".__dict__"]);
        assert_eq!(drawn.validate(), Ok(()));
    }

    #[test]
    fn depth_and_too_many_bound_the_graph() {
        let snapshot = leak();
        let graph = Graph::new(&snapshot).expect("graph");
        let cache = NodeIdx(2);
        let forward = RefsOptions {
            direction: Direction::Forward,
            max_depth: 1,
            too_many: 2,
        };
        let drawn = reference_graph(&graph, &[cache], &forward, |_| false);
        assert_eq!(drawn.nodes.len(), 3);
        assert_eq!(drawn.edges.len(), 2);
        let shallow = RefsOptions {
            max_depth: 1,
            ..RefsOptions::default()
        };
        let drawn = reference_graph(&graph, &[NodeIdx(3)], &shallow, |n| n == cache);
        assert_eq!(drawn.nodes.len(), 1);
    }

    #[test]
    fn sample_is_spread_and_bounded() {
        let nodes: Vec<NodeIdx> = (0..10).map(NodeIdx).collect();
        assert_eq!(
            spread_sample(&nodes, 3),
            [NodeIdx(0), NodeIdx(4), NodeIdx(9)]
        );
        assert_eq!(spread_sample(&nodes, 1), [NodeIdx(0)]);
        assert_eq!(spread_sample(&nodes[..2], 5).len(), 2);
        assert!(spread_sample(&nodes, 0).is_empty());
    }
}
