//! The graph view over a [`Snapshot`]: forward edges straight from the snapshot's CSR,
//! plus a compact reverse index and a per-node root lookup.

use std::sync::OnceLock;

use heapsight_snapshot::model::{LabelKind, NodeIdx, Root, RootKind, Snapshot};

use crate::error::GraphError;
use crate::mem;

/// Position of an edge in the snapshot's edge columns (`edges.targets[i]`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EdgeIdx(pub u32);

impl EdgeIdx {
    /// The position as a `usize`, for indexing edge columns.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Index into [`Snapshot::roots`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RootIdx(pub u32);

impl RootIdx {
    /// The position as a `usize`, for indexing `Snapshot::roots`.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Marks "no root" in [`Graph`]'s per-node root column.
const NO_ROOT: u32 = u32::MAX;

/// Preference tier of a root kind when choosing which root a path starts from: lower wins.
///
/// Modules, threads and interpreter objects explain *why* Python keeps an object;
/// `External` roots (refcount above the in-degree found, i.e. held from C) only say
/// that something invisible holds it, so they are a fallback for objects that no
/// Python-level root reaches.
pub fn root_tier(kind: RootKind) -> u8 {
    match kind {
        RootKind::Module | RootKind::Thread | RootKind::Interpreter => 0,
        RootKind::External => 1,
    }
}

/// Order of root kinds inside one tier: modules read best, then threads, then the interpreter.
fn root_kind_rank(kind: RootKind) -> u8 {
    match kind {
        RootKind::Module => 0,
        RootKind::Thread => 1,
        RootKind::Interpreter => 2,
        RootKind::External => 3,
    }
}

/// Read-only graph view of a snapshot with predecessor lookup.
///
/// Memory beyond the snapshot: 4 bytes per node for the root lookup; with the reverse
/// index, 4 bytes per node more for its offsets and 8 bytes per edge (predecessor +
/// edge position).
pub struct Graph<'s> {
    snapshot: &'s Snapshot,
    /// The reverse index: built by [`Graph::new`], or on the first predecessor
    /// question for a view made by [`Graph::lazy`].
    reverse: OnceLock<ReverseIndex>,
    /// Per node, the preferred root naming it ([`NO_ROOT`] if none).
    root_of: Vec<u32>,
    /// Root indices in preference order (tier, kind, snapshot order), one per distinct node.
    roots_by_preference: Vec<RootIdx>,
}

impl<'s> Graph<'s> {
    /// Builds the view in O(n + m). Validates the snapshot first, so that later
    /// lookups can index without surprises.
    pub fn new(snapshot: &'s Snapshot) -> Result<Self, GraphError> {
        let graph = Graph::lazy(snapshot)?;
        graph.reverse();
        Ok(graph)
    }

    /// Like [`Graph::new`], but the reverse index (8 bytes per edge, a pass of random
    /// writes) is built on the first predecessor question, if one comes: dominators,
    /// paths from the roots and shapes never ask one.
    pub fn lazy(snapshot: &'s Snapshot) -> Result<Self, GraphError> {
        snapshot.validate()?;
        let n = snapshot.n_nodes();
        let m = snapshot.edges.len();
        // u32::MAX is kept free as a sentinel in per-node arrays of edge positions.
        if m >= u32::MAX as usize {
            return Err(GraphError::TooManyEdges(m));
        }
        if n >= (u32::MAX - 1) as usize {
            return Err(GraphError::TooManyNodes(n));
        }
        if snapshot.roots.len() >= NO_ROOT as usize {
            return Err(GraphError::TooManyRoots(snapshot.roots.len()));
        }
        // Every pass over the graph reads these at random; see `mem`.
        mem::collapse_to_huge_pages(&snapshot.edges.offsets);
        mem::collapse_to_huge_pages(&snapshot.edges.targets);

        let mut by_preference: Vec<RootIdx> =
            (0..snapshot.roots.len() as u32).map(RootIdx).collect();
        by_preference.sort_by_key(|r| {
            let kind = snapshot.roots[r.index()].kind;
            (root_tier(kind), root_kind_rank(kind), r.0)
        });
        let mut root_of = mem::filled(n, NO_ROOT);
        let mut roots_by_preference = Vec::with_capacity(by_preference.len());
        for r in by_preference {
            let node = snapshot.roots[r.index()].node.index();
            if root_of[node] == NO_ROOT {
                root_of[node] = r.0;
                roots_by_preference.push(r);
            }
        }
        Ok(Graph {
            snapshot,
            reverse: OnceLock::new(),
            root_of,
            roots_by_preference,
        })
    }

    fn reverse(&self) -> &ReverseIndex {
        self.reverse.get_or_init(|| build_reverse(self.snapshot))
    }

    /// The snapshot this view reads.
    pub fn snapshot(&self) -> &'s Snapshot {
        self.snapshot
    }

    /// Number of nodes.
    pub fn n_nodes(&self) -> usize {
        self.root_of.len()
    }

    /// Number of edges.
    pub fn n_edges(&self) -> usize {
        self.snapshot.edges.len()
    }

    /// Outgoing edges of `node` as `(edge, target)`, in snapshot order.
    pub fn successors(
        &self,
        node: NodeIdx,
    ) -> impl ExactSizeIterator<Item = (EdgeIdx, NodeIdx)> + '_ {
        let range = self.snapshot.edges.range_of(node);
        let start = range.start;
        self.snapshot.edges.targets[range]
            .iter()
            .enumerate()
            .map(move |(i, t)| (EdgeIdx((start + i) as u32), *t))
    }

    /// Incoming edges of `node` as `(source, edge)`, ordered by source.
    pub fn predecessors(
        &self,
        node: NodeIdx,
    ) -> impl ExactSizeIterator<Item = (NodeIdx, EdgeIdx)> + '_ {
        let range = self.rev_range(node);
        self.reverse().rev[range].iter().copied()
    }

    /// Number of edges pointing at `node`.
    pub fn in_degree(&self, node: NodeIdx) -> usize {
        self.rev_range(node).len()
    }

    fn rev_range(&self, node: NodeIdx) -> std::ops::Range<usize> {
        let i = node.index();
        let offsets = &self.reverse().offsets;
        match (offsets.get(i), offsets.get(i + 1)) {
            (Some(&a), Some(&b)) => a as usize..b as usize,
            _ => 0..0,
        }
    }

    /// Target node of `edge`.
    pub fn edge_target(&self, edge: EdgeIdx) -> NodeIdx {
        self.snapshot.edges.targets[edge.index()]
    }

    /// Label of `edge`: its kind and raw value (a string id for string kinds).
    pub fn edge_label(&self, edge: EdgeIdx) -> (LabelKind, u32) {
        let e = &self.snapshot.edges;
        (e.label_kinds[edge.index()], e.label_values[edge.index()])
    }

    /// The preferred root naming `node`, if `node` is a root. When several roots name
    /// the same node, the one with the best [`root_tier`] wins (then Module before
    /// Thread before Interpreter, then snapshot order).
    pub fn root_of(&self, node: NodeIdx) -> Option<RootIdx> {
        match self.root_of.get(node.index()) {
            Some(&r) if r != NO_ROOT => Some(RootIdx(r)),
            _ => None,
        }
    }

    /// The root record for `root`.
    pub fn root(&self, root: RootIdx) -> &'s Root {
        &self.snapshot.roots[root.index()]
    }

    /// One root per distinct root node, in preference order: tier 0 (Module, Thread,
    /// Interpreter) first, then External; snapshot order within a kind.
    pub fn roots_by_preference(&self) -> &[RootIdx] {
        &self.roots_by_preference
    }

    /// Shortest path from a root to `target`, searching backwards from it; see
    /// [`crate::paths::path_to_single`].
    pub fn path_to_single(&self, target: NodeIdx) -> Option<crate::paths::Path> {
        crate::paths::path_to_single(self, target)
    }

    /// Whether `node` is named by any root (of any kind).
    pub fn is_root(&self, node: NodeIdx) -> bool {
        self.root_of(node).is_some()
    }
}

/// Incoming edges grouped by target.
struct ReverseIndex {
    /// `offsets[v]..offsets[v + 1]` are the positions in `rev` of the edges pointing
    /// at `v`, ordered by source node.
    offsets: Vec<u32>,
    /// (source, edge position) per incoming edge. One array, not two: building it
    /// writes each entry at a random place, and one cache miss beats two.
    rev: Vec<(NodeIdx, EdgeIdx)>,
}

/// Counting sort of the edges by target. Filling from the back, sources descending,
/// leaves each predecessor list ordered by source without a cursor array. Needs a
/// validated snapshot (see [`Graph::lazy`]).
fn build_reverse(snapshot: &Snapshot) -> ReverseIndex {
    let n = snapshot.n_nodes();
    let edges = &snapshot.edges;
    let m = edges.len();
    let mut offsets = mem::filled(n + 1, 0u32);
    for t in &edges.targets {
        offsets[t.index() + 1] += 1;
    }
    for i in 0..n {
        offsets[i + 1] += offsets[i];
    }
    // Turn starts into ends: offsets[v] now points one past v's last slot.
    for i in 0..n {
        offsets[i] = offsets[i + 1];
    }
    let mut rev = mem::filled(m, (NodeIdx(0), EdgeIdx(0)));
    for src in (0..n).rev() {
        let range = edges.range_of(NodeIdx(src as u32));
        for pos in range.rev() {
            let t = edges.targets[pos].index();
            offsets[t] -= 1;
            let slot = offsets[t] as usize;
            rev[slot] = (NodeIdx(src as u32), EdgeIdx(pos as u32));
        }
    }
    // After the fill, offsets[v] is v's start; offsets[n] still holds m.
    ReverseIndex { offsets, rev }
}
