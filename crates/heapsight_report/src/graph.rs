//! The renderer-facing reference graph: a small, already-selected subgraph of a heap snapshot
//! (what objgraph's `show_backrefs` / `show_refs` draw), decoupled from the snapshot model so the
//! renderers stay pure functions of plain data.

use std::collections::HashMap;

use thiserror::Error;

/// Caller-chosen identity of a node (typically the object address or snapshot node index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RefNodeId(pub u64);

/// How a node is emphasized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NodeKind {
    /// Where a backreference search stopped: a module, thread or other GC root (drawn green).
    Root,
    /// One of the objects the user asked about (drawn red and outlined).
    Target,
    /// Everything in between.
    #[default]
    Normal,
}

/// A node: one object, shown as a box with a bold title and optional subtitle lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefNode {
    /// Identity used by [`RefEdge::from`] / [`RefEdge::to`].
    pub id: RefNodeId,
    /// Usually the type name, e.g. `dict` or `myapp.models.Session`.
    pub title: String,
    /// Extra detail such as `len 3`, `12.3 KiB` or a module name; `\n` separates lines and an
    /// empty string means no subtitle.
    pub subtitle: String,
    /// Emphasis.
    pub kind: NodeKind,
}

/// A directed reference `from` → `to` (the referrer points at the referent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefEdge {
    /// Referrer.
    pub from: RefNodeId,
    /// Referent.
    pub to: RefNodeId,
    /// How `from` refers to `to`: an attribute name, dict key, `[3]`, ...; may be empty.
    pub label: String,
}

/// A reference graph to render. Renderers are total: they never fail on a malformed graph.
/// Nodes with a duplicate id after the first are ignored and edges whose endpoints are not
/// nodes are skipped, so callers that want to catch such bugs should call
/// [`RefGraph::validate`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefGraph {
    /// Nodes in the order they should be preferred when the layout has a free choice.
    pub nodes: Vec<RefNode>,
    /// Edges; parallel edges and self-loops are allowed.
    pub edges: Vec<RefEdge>,
}

/// A structural problem found by [`RefGraph::validate`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GraphError {
    /// Two nodes share an id.
    #[error("node id {0:?} appears more than once")]
    DuplicateNode(RefNodeId),
    /// An edge endpoint is not a node.
    #[error("edge {edge} refers to unknown node {node:?}")]
    DanglingEdge {
        /// Position of the edge in [`RefGraph::edges`].
        edge: usize,
        /// The missing endpoint.
        node: RefNodeId,
    },
}

impl RefGraph {
    /// An empty graph.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a node and returns its id, for fluent construction.
    pub fn add_node(
        &mut self,
        id: RefNodeId,
        title: impl Into<String>,
        subtitle: impl Into<String>,
        kind: NodeKind,
    ) -> RefNodeId {
        self.nodes.push(RefNode {
            id,
            title: title.into(),
            subtitle: subtitle.into(),
            kind,
        });
        id
    }

    /// Appends an edge.
    pub fn add_edge(&mut self, from: RefNodeId, to: RefNodeId, label: impl Into<String>) {
        self.edges.push(RefEdge {
            from,
            to,
            label: label.into(),
        });
    }

    /// Checks that node ids are unique and every edge connects two nodes.
    pub fn validate(&self) -> Result<(), GraphError> {
        let mut seen = HashMap::with_capacity(self.nodes.len());
        for node in &self.nodes {
            if seen.insert(node.id, ()).is_some() {
                return Err(GraphError::DuplicateNode(node.id));
            }
        }
        for (index, edge) in self.edges.iter().enumerate() {
            for endpoint in [edge.from, edge.to] {
                if !seen.contains_key(&endpoint) {
                    return Err(GraphError::DanglingEdge {
                        edge: index,
                        node: endpoint,
                    });
                }
            }
        }
        Ok(())
    }
}

/// Position of a node in [`RefGraph::nodes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeIndex(pub u32);

impl NodeIndex {
    /// As a `usize` for indexing.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Position of an edge in [`RefGraph::edges`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EdgeIndex(pub u32);

impl EdgeIndex {
    /// As a `usize` for indexing.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// The renderable part of a graph: first occurrence of each node id, and the edges between
/// known nodes, both referring to positions in the original vectors.
pub(crate) struct Resolved {
    /// Indices of kept nodes, in input order.
    pub nodes: Vec<NodeIndex>,
    /// Kept edges as (edge, from position in `nodes`, to position in `nodes`).
    pub edges: Vec<(EdgeIndex, usize, usize)>,
}

impl Resolved {
    pub fn new(graph: &RefGraph) -> Self {
        let mut slot_of: HashMap<RefNodeId, usize> = HashMap::with_capacity(graph.nodes.len());
        let mut nodes = Vec::with_capacity(graph.nodes.len());
        for (index, node) in graph.nodes.iter().enumerate() {
            if let std::collections::hash_map::Entry::Vacant(slot) = slot_of.entry(node.id) {
                slot.insert(nodes.len());
                nodes.push(NodeIndex(to_u32(index)));
            }
        }
        let edges = graph
            .edges
            .iter()
            .enumerate()
            .filter_map(|(index, edge)| {
                let from = *slot_of.get(&edge.from)?;
                let to = *slot_of.get(&edge.to)?;
                Some((EdgeIndex(to_u32(index)), from, to))
            })
            .collect();
        Resolved { nodes, edges }
    }
}

/// Graphs come from bounded object searches; more than 4 billion elements would not be drawable
/// anyway, so saturating keeps indices total without an error path.
fn to_u32(index: usize) -> u32 {
    u32::try_from(index).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_reports_problems() {
        let mut graph = RefGraph::new();
        let a = graph.add_node(RefNodeId(1), "dict", "", NodeKind::Root);
        let b = graph.add_node(RefNodeId(2), "list", "len 3", NodeKind::Target);
        graph.add_edge(a, b, "items");
        assert_eq!(graph.validate(), Ok(()));
        graph.add_edge(a, RefNodeId(9), "");
        assert_eq!(
            graph.validate(),
            Err(GraphError::DanglingEdge {
                edge: 1,
                node: RefNodeId(9)
            })
        );
        graph.add_node(RefNodeId(1), "dup", "", NodeKind::Normal);
        assert_eq!(
            graph.validate(),
            Err(GraphError::DuplicateNode(RefNodeId(1)))
        );
    }

    #[test]
    fn resolved_drops_duplicates_and_dangling_edges() {
        let mut graph = RefGraph::new();
        graph.add_node(RefNodeId(1), "a", "", NodeKind::Normal);
        graph.add_node(RefNodeId(1), "a again", "", NodeKind::Normal);
        graph.add_node(RefNodeId(2), "b", "", NodeKind::Normal);
        graph.add_edge(RefNodeId(1), RefNodeId(2), "x");
        graph.add_edge(RefNodeId(2), RefNodeId(3), "y");
        let resolved = Resolved::new(&graph);
        assert_eq!(resolved.nodes, vec![NodeIndex(0), NodeIndex(2)]);
        assert_eq!(resolved.edges, vec![(EdgeIndex(0), 0, 1)]);
    }
}
