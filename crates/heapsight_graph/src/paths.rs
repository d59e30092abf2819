//! Shortest labelled paths from the roots: once for every node (forward BFS) or for
//! one node (backward BFS from the target).

use heapsight_snapshot::model::NodeIdx;

use crate::graph::{root_tier, EdgeIdx, Graph, RootIdx};
use crate::hash::FastMap;
use crate::mem;
use crate::shapes::ShapeMemo;

/// A path from a root to a node: `nodes[0]` is the root's node, `edges[i]` leads from
/// `nodes[i]` to `nodes[i + 1]`, and the last node is the target.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Path {
    /// The root the path starts from.
    pub root: RootIdx,
    /// Nodes from the root node to the target, both included; one more than `edges`.
    pub nodes: Vec<NodeIdx>,
    /// Edges between consecutive nodes.
    pub edges: Vec<EdgeIdx>,
}

impl Path {
    /// The node the path ends at (`None` only for a hand-built empty path).
    pub fn target(&self) -> Option<NodeIdx> {
        self.nodes.last().copied()
    }

    /// Number of edges.
    pub fn len(&self) -> usize {
        self.edges.len()
    }

    /// Whether the path has no edge (the target is the root itself).
    pub fn is_empty(&self) -> bool {
        self.edges.is_empty()
    }
}

/// Parent marker for nodes not reached from any root.
const UNREACHED: u32 = u32::MAX;
/// Parent marker for nodes where a path starts; `parent_edge` then holds the root index.
const ROOT_MARK: u32 = u32::MAX - 1;

/// Shortest-path tree from the roots, computed once in O(n + m) by
/// [`shortest_paths_from_roots`]. Costs 8 bytes per node (plus the shapes, when the
/// tree comes from [`GraphIndex`](crate::GraphIndex)).
pub struct PathTree {
    /// Per node: the previous node on its path, [`ROOT_MARK`] or [`UNREACHED`].
    /// and the edge from it (or the root index for a root). One array for both: the
    /// search writes them at random places, and one cache miss beats two.
    parent: Vec<(u32, u32)>,
    /// The retainer shape of every reached node, when computed by the same search;
    /// [`ShapeIndex::new`](crate::ShapeIndex::new) then reads them instead of
    /// computing shapes on demand.
    pub(crate) shapes: Option<ShapeMemo>,
}

/// Breadth-first search from all roots at once, tier by tier (see [`root_tier`]):
/// first from every Module, Thread and Interpreter root, then, for whatever is still
/// unreached, from the External roots. Within a tier each node gets a path of minimal
/// length; among equally short ones, module roots win over threads over the interpreter.
pub fn shortest_paths_from_roots(graph: &Graph) -> PathTree {
    bfs_from_roots(graph, |_, _| {})
}

/// How the breadth-first search first reached a node.
pub(crate) enum Reached<S> {
    /// The node is a root's; its path starts there.
    Root(RootIdx),
    /// Over an edge (position in the edge columns) from a parent whose state is given.
    Edge(S, u32),
}

/// The search of [`shortest_paths_from_roots`], calling `visit(node, how)` once for each
/// node as it is reached (a parent always before its children). What `visit` returns
/// is the node's state, handed to the visits of its children: it rides in the queue,
/// so the search never looks it up again at a random place.
pub(crate) fn bfs_from_roots<S: Copy>(
    graph: &Graph,
    mut visit: impl FnMut(u32, Reached<S>) -> S,
) -> PathTree {
    let n = graph.n_nodes();
    let snapshot = graph.snapshot();
    let offsets = &snapshot.edges.offsets;
    let targets = &snapshot.edges.targets;
    let mut parent = mem::filled(n, (UNREACHED, 0u32));
    let mut queue: Vec<(u32, S)> = mem::with_capacity(n);
    let mut seen: Vec<u64> = mem::filled(n.div_ceil(64), 0u64);
    let prefs = graph.roots_by_preference();
    let mut next_root = 0;
    while next_root < prefs.len() {
        let tier = root_tier(graph.root(prefs[next_root]).kind);
        let first_of_wave = queue.len();
        while next_root < prefs.len() && root_tier(graph.root(prefs[next_root]).kind) == tier {
            let r = prefs[next_root];
            let node = graph.root(r).node.index();
            if seen[node / 64] & (1 << (node % 64)) == 0 {
                seen[node / 64] |= 1 << (node % 64);
                parent[node] = (ROOT_MARK, r.0);
                let state = visit(node as u32, Reached::Root(r));
                queue.push((node as u32, state));
            }
            next_root += 1;
        }
        let mut head = first_of_wave;
        while head < queue.len() {
            let (u, u_state) = queue[head];
            let u = u as usize;
            head += 1;
            let start = offsets[u] as usize;
            let end = offsets[u + 1] as usize;
            for (pos, t) in (start..end).zip(&targets[start..end]) {
                let t = t.index();
                // The bitset answers "seen?" from cache; `parent` is touched only
                // for newly reached nodes.
                let bit = 1u64 << (t % 64);
                if seen[t / 64] & bit == 0 {
                    seen[t / 64] |= bit;
                    parent[t] = (u as u32, pos as u32);
                    let state = visit(t as u32, Reached::Edge(u_state, pos as u32));
                    queue.push((t as u32, state));
                }
            }
        }
    }
    PathTree {
        parent,
        shapes: None,
    }
}

impl PathTree {
    /// Number of nodes covered (reached or not).
    pub fn n_nodes(&self) -> usize {
        self.parent.len()
    }

    /// Whether the shape of every reached node came with this tree (see
    /// [`GraphIndex`](crate::GraphIndex)).
    pub fn has_shapes(&self) -> bool {
        self.shapes.is_some()
    }

    /// Whether some root reaches `node`.
    pub fn is_reachable(&self, node: NodeIdx) -> bool {
        matches!(self.parent.get(node.index()), Some(&(p, _)) if p != UNREACHED)
    }

    /// The step before `node` on its path: `(previous node, edge)`; `None` for roots
    /// and unreached nodes.
    pub fn parent(&self, node: NodeIdx) -> Option<(NodeIdx, EdgeIdx)> {
        match self.parent.get(node.index()) {
            Some(&(p, edge)) if p != UNREACHED && p != ROOT_MARK => {
                Some((NodeIdx(p), EdgeIdx(edge)))
            }
            _ => None,
        }
    }

    /// The root `node`'s path starts from, if it is reached.
    pub fn root_of_path(&self, node: NodeIdx) -> Option<RootIdx> {
        let mut cur = node;
        loop {
            match *self.parent.get(cur.index())? {
                (UNREACHED, _) => return None,
                (ROOT_MARK, root) => return Some(RootIdx(root)),
                (p, _) => cur = NodeIdx(p),
            }
        }
    }

    /// The shortest path from a root to `node`, or `None` if no root reaches it.
    pub fn path_to(&self, node: NodeIdx) -> Option<Path> {
        let mut path = Path::default();
        self.path_into(node, &mut path).then_some(path)
    }

    /// Like [`PathTree::path_to`] but reuses `path`'s buffers; returns whether `node`
    /// is reached (`path` is left empty otherwise).
    pub fn path_into(&self, node: NodeIdx, path: &mut Path) -> bool {
        path.nodes.clear();
        path.edges.clear();
        let mut cur = node;
        loop {
            let Some(&(p, edge)) = self.parent.get(cur.index()) else {
                return false;
            };
            path.nodes.push(cur);
            match p {
                UNREACHED => {
                    path.nodes.clear();
                    path.edges.clear();
                    return false;
                }
                ROOT_MARK => {
                    path.root = RootIdx(edge);
                    path.nodes.reverse();
                    path.edges.reverse();
                    return true;
                }
                p => {
                    path.edges.push(EdgeIdx(edge));
                    cur = NodeIdx(p);
                }
            }
        }
    }
}

pub(crate) type NodeMap<V> = FastMap<u32, V>;

/// Marks the target itself in the backward search's "edge toward the target" map.
const AT_TARGET: u32 = u32::MAX;

/// Shortest path from a root to `target`, found by searching backwards over the
/// reverse index level by level until a root is met: cost proportional to the part of
/// the graph within that distance of the target, not to the whole graph.
///
/// Follows the same preferences as [`shortest_paths_from_roots`]: a path from a
/// Module/Thread/Interpreter root is returned if one exists (the shortest such, modules
/// preferred on ties); External roots are only used when none reaches the target, which
/// requires exhausting everything that reaches it. The path has the same length as
/// [`PathTree::path_to`]'s, though it may pick another path of that length.
pub fn path_to_single(graph: &Graph, target: NodeIdx) -> Option<Path> {
    path_to_single_avoiding(graph, target, |_| false)
}

/// [`path_to_single`] through nodes for which `avoid` is false only: the objects a caller
/// wants out of the answer, such as the frames of the code asking the question.
pub fn path_to_single_avoiding(
    graph: &Graph,
    target: NodeIdx,
    avoid: impl Fn(NodeIdx) -> bool,
) -> Option<Path> {
    if target.index() >= graph.n_nodes() {
        return None;
    }
    // For each visited node, the edge leading one step closer to the target.
    let mut toward: NodeMap<u32> = NodeMap::default();
    toward.insert(target.0, AT_TARGET);
    let mut frontier = vec![target];
    let mut next = Vec::new();
    let mut fallback: Option<(NodeIdx, RootIdx)> = None;
    let preference = |r: RootIdx| {
        let kind = graph.root(r).kind;
        (root_tier(kind), kind as u8, r.0)
    };
    while !frontier.is_empty() {
        let best = frontier
            .iter()
            .filter_map(|&v| graph.root_of(v).map(|r| (v, r)))
            .min_by_key(|&(_, r)| preference(r));
        if let Some((v, r)) = best {
            if root_tier(graph.root(r).kind) == 0 {
                return Some(follow_toward(graph, &toward, v, r));
            }
            if fallback.is_none() {
                fallback = Some((v, r));
            }
        }
        next.clear();
        for &v in &frontier {
            for (u, e) in graph.predecessors(v) {
                if avoid(u) {
                    continue;
                }
                if let std::collections::hash_map::Entry::Vacant(slot) = toward.entry(u.0) {
                    slot.insert(e.0);
                    next.push(u);
                }
            }
        }
        std::mem::swap(&mut frontier, &mut next);
    }
    fallback.map(|(v, r)| follow_toward(graph, &toward, v, r))
}

fn follow_toward(graph: &Graph, toward: &NodeMap<u32>, start: NodeIdx, root: RootIdx) -> Path {
    let mut path = Path {
        root,
        nodes: vec![start],
        edges: Vec::new(),
    };
    let mut cur = start;
    // Every visited node's edge leads to a node visited one level earlier, so this
    // walk ends at the target within the number of levels searched.
    while let Some(&e) = toward.get(&cur.0) {
        if e == AT_TARGET {
            break;
        }
        let edge = EdgeIdx(e);
        path.edges.push(edge);
        cur = graph.edge_target(edge);
        path.nodes.push(cur);
    }
    path
}
