//! Dominator tree of the whole heap from a virtual super-root, and retained sizes.
//!
//! Algorithm: Semi-NCA (Georgiadis & Tarjan's simplification of Lengauer-Tarjan, the
//! variant LLVM uses): an iterative DFS numbers the nodes, semidominators are computed
//! in reverse preorder with an iterative path-compressing `eval`, and each immediate
//! dominator is the nearest common ancestor of the DFS parent and the semidominator.
//! No recursion anywhere, so a million-long linked list is fine.
//!
//! The super-root has an edge to every root node. Nodes that no root reaches are
//! attached to the super-root too: in increasing index order, each node not reached
//! from the roots nor from an earlier attached node becomes a child of the super-root
//! and is explored from there. A garbage cycle thus gets one entry point whose retained
//! size is the whole cycle, instead of every member retaining only itself. Edges from
//! unreachable nodes into the reachable heap are ignored, so garbage never changes the
//! dominators or retained sizes of live objects.
//!
//! Memory: 20 bytes per node are kept (numbering both ways, dominators, retained
//! sizes), 8 more once children are asked for. The computation peaks at about 32 bytes
//! per node plus 4 per edge (predecessor lists in DFS order, built from the forward
//! edges: the graph's reverse index is not needed), plus a DFS stack of 12 bytes per
//! level of depth; the big arrays ask for transparent huge pages (see `mem`).

use heapsight_snapshot::model::{NodeIdx, Snapshot};

use crate::graph::Graph;
use crate::mem;

/// DFS number of the super-root.
const SUPER: u32 = 0;
/// `pre` value of a node not yet visited by the DFS.
const UNSEEN: u32 = u32::MAX;
/// A predecessor the semidominator pass must ignore.
const SKIPPED_PRED: u32 = u32::MAX;
/// How many vertices ahead the semidominator pass prefetches predecessors' forest
/// entries: about as many loads in flight as the CPU sustains, not so far that they
/// are evicted before use.
const SEMI_PREFETCH_AHEAD: usize = 4;
/// Edges ahead the predecessor lists' passes prefetch their targets' entries.
const PRED_PREFETCH_AHEAD: usize = 16;
/// Children of a newly found node whose edge ranges the DFS prefetches.
const DFS_PREFETCH_CHILDREN: usize = 6;

/// Dominator tree over the nodes of a snapshot plus a virtual super-root.
///
/// Internally everything is indexed by DFS preorder number (0 is the super-root), which
/// makes the bottom-up passes sequential: a dominator always has a smaller number than
/// the nodes it dominates.
pub struct DominatorTree {
    /// Node -> DFS number (1-based; every node gets one).
    pre: Vec<u32>,
    /// DFS number -> node; entry 0 (super-root) is unused.
    order: Vec<NodeIdx>,
    /// DFS number -> DFS number of the immediate dominator (0 for the super-root itself).
    idom: Vec<u32>,
    /// DFS number -> retained bytes (shallow size of the whole dominated subtree).
    retained: Vec<u64>,
    /// Dominated children as a CSR over DFS numbers (offsets, then children in DFS
    /// order), built on the first question about children: most analyses never ask,
    /// and on a big heap it costs 8 bytes per node and a pass of random writes.
    children: std::sync::OnceLock<(Vec<u32>, Vec<u32>)>,
    /// Nodes with DFS numbers `1..=n_reachable` are reachable from real roots.
    n_reachable: u32,
    /// Per-number counters of `most_dominating`, kept between calls: callers ask about
    /// many target sets in a row, and on a big heap a fresh array per call (above
    /// malloc's mmap threshold) costs page faults and kernel zeroing comparable to the
    /// pass itself. Empty until first needed; a concurrent call allocates its own.
    scratch: std::sync::Mutex<Vec<u32>>,
}

/// The depth-first numbering the dominator computation starts from.
struct Dfs {
    /// Node -> DFS number.
    pre: Vec<u32>,
    /// DFS number -> node; entry 0 (super-root) is unused.
    order: Vec<NodeIdx>,
    /// DFS number -> DFS number of the DFS parent.
    parent: Vec<u32>,
    /// Nodes with an edge from the super-root: real roots and attached unreachable nodes.
    root_child: Vec<u64>,
    /// Nodes with DFS numbers `1..=n_reachable` are reachable from real roots.
    n_reachable: u32,
}

impl Dfs {
    /// Numbers every node: first what the roots reach (roots in preference order),
    /// then the unreachable rest as described in the module docs.
    fn run(graph: &Graph) -> Dfs {
        let n = graph.n_nodes();
        let snapshot = graph.snapshot();
        let offsets = &snapshot.edges.offsets;
        let targets = &snapshot.edges.targets;
        let count = n + 1;

        let mut root_child = vec![0u64; n.div_ceil(64)];
        let mut pre = mem::filled(n, UNSEEN);
        let mut order: Vec<NodeIdx> = mem::with_capacity(count);
        let mut parent: Vec<u32> = mem::with_capacity(count);
        order.push(NodeIdx(u32::MAX));
        parent.push(SUPER);
        // DFS stack entries: (next edge position, end of the edge range, DFS number of
        // the node). Keeping the end and the number here, not re-reading them from
        // `offsets` and `pre`, matters: when the search comes back to a node after a
        // deep subtree, those lines have long left the cache.
        let mut stack: Vec<(u32, u32, u32)> = Vec::new();

        // Most edges lead to nodes already seen; asking a bitset (n/8 bytes, mostly
        // cache resident) instead of `pre` (4n bytes, a cache and TLB miss each time)
        // is what keeps the DFS fast on big heaps.
        let mut seen: Vec<u64> = mem::filled(n.div_ceil(64), 0u64);
        let mut dfs_from = |start: usize,
                            seen: &mut Vec<u64>,
                            pre: &mut Vec<u32>,
                            order: &mut Vec<NodeIdx>,
                            parent: &mut Vec<u32>| {
            if seen[start / 64] & (1 << (start % 64)) != 0 {
                return;
            }
            seen[start / 64] |= 1 << (start % 64);
            let number = order.len() as u32;
            pre[start] = number;
            order.push(NodeIdx(start as u32));
            parent.push(SUPER);
            stack.push((offsets[start] as u32, offsets[start + 1] as u32, number));
            while let Some(top) = stack.last_mut() {
                let (pos, end, u_number) = *top;
                if pos < end {
                    top.0 += 1;
                    let t = targets[pos as usize].index();
                    // The next sibling's edge range is read when the search comes back
                    // here, which for the many leaves and small subtrees is soon:
                    // start that random read now.
                    if pos + 1 < end {
                        let next = targets[pos as usize + 1].index();
                        if seen[next / 64] & (1 << (next % 64)) == 0 {
                            mem::prefetch(offsets, next);
                        }
                    }
                    let bit = 1u64 << (t % 64);
                    if seen[t / 64] & bit == 0 {
                        seen[t / 64] |= bit;
                        let number = order.len() as u32;
                        pre[t] = number;
                        order.push(NodeIdx(t as u32));
                        parent.push(u_number);
                        let (first, end) = (offsets[t] as usize, offsets[t + 1] as usize);
                        // Likewise for the first few children of the new node: their
                        // ranges are read as soon as the search gets to them.
                        for &c in &targets[first..end.min(first + DFS_PREFETCH_CHILDREN)] {
                            let c = c.index();
                            if seen[c / 64] & (1 << (c % 64)) == 0 {
                                mem::prefetch(offsets, c);
                            }
                        }
                        stack.push((first as u32, end as u32, number));
                    }
                } else {
                    stack.pop();
                }
            }
        };
        for &r in graph.roots_by_preference() {
            let node = graph.root(r).node.index();
            root_child[node / 64] |= 1 << (node % 64);
            dfs_from(node, &mut seen, &mut pre, &mut order, &mut parent);
        }
        let n_reachable = (order.len() - 1) as u32;
        for node in 0..n {
            if seen[node / 64] & (1 << (node % 64)) == 0 {
                root_child[node / 64] |= 1 << (node % 64);
                dfs_from(node, &mut seen, &mut pre, &mut order, &mut parent);
            }
        }
        drop(seen);
        drop(stack);
        debug_assert_eq!(order.len(), count);
        Dfs {
            pre,
            order,
            parent,
            root_child,
            n_reachable,
        }
    }
}

impl DominatorTree {
    /// Computes dominators and retained sizes for the whole graph in O(m log n) time.
    /// Reads forward edges only, so a [`Graph::lazy`] view never builds its reverse
    /// index for it.
    pub fn compute(graph: &Graph) -> DominatorTree {
        DominatorTree::compute_with(graph, || in_degrees(graph.snapshot()))
    }

    /// [`DominatorTree::compute`], taking the [`in_degrees`] of the snapshot from
    /// `in_degree` once the DFS is done: another thread may have counted them.
    pub(crate) fn compute_with(graph: &Graph, in_degree: impl FnOnce() -> Vec<u32>) -> Self {
        let dfs = Dfs::run(graph);
        let in_degree = in_degree();
        DominatorTree::finish(dfs, &in_degree, graph)
    }

    /// The rest of [`DominatorTree::compute`] after the DFS.
    fn finish(dfs: Dfs, in_degree: &[u32], graph: &Graph) -> DominatorTree {
        let Dfs {
            pre,
            order,
            parent,
            root_child,
            n_reachable,
        } = dfs;
        let n = graph.n_nodes();
        let snapshot = graph.snapshot();
        let count = n + 1;

        // Predecessors in DFS-number space, grouped by number, so the semidominator
        // pass reads them sequentially instead of chasing node -> number lookups.
        // Built straight from the forward edges (no reverse index needed): counted per
        // target node, then filled by a counting sort on the target's number. Roots need
        // none (their semidominator is the super-root), and an edge from garbage into
        // the live heap is stored as SKIPPED_PRED: it must not change live dominators.
        let is_root_child = |node: usize| root_child[node / 64] & (1 << (node % 64)) != 0;
        let offsets = &snapshot.edges.offsets;
        let targets = &snapshot.edges.targets;
        let mut pred_offsets: Vec<u32> = mem::filled(count + 1, 0u32);
        for node in 0..n {
            if !is_root_child(node) {
                pred_offsets[pre[node] as usize + 1] = in_degree[node];
            }
        }
        for w in 0..count {
            pred_offsets[w + 1] += pred_offsets[w];
        }
        // Turn starts into ends; the fill below, from the back with sources descending,
        // brings each back to its start and leaves each list ordered by source node.
        for w in 0..count {
            pred_offsets[w] = pred_offsets[w + 1];
        }
        let mut pred_nums: Vec<u32> = mem::filled(pred_offsets[count] as usize, 0u32);
        for source in (0..n).rev() {
            let v = pre[source];
            let garbage = v > n_reachable;
            let (first, end) = (offsets[source] as usize, offsets[source + 1] as usize);
            for pos in (first..end).rev() {
                // Two random reads per edge, the second depending on the first: start
                // the first for a later edge, and the second for an edge between, whose
                // first read was started earlier and has arrived.
                if let Some(later) = pos.checked_sub(PRED_PREFETCH_AHEAD) {
                    mem::prefetch(&pre, targets[later].index());
                    let nearer = targets[later + PRED_PREFETCH_AHEAD / 2].index();
                    mem::prefetch(&pred_offsets, pre[nearer] as usize);
                }
                let t = targets[pos].index();
                if is_root_child(t) {
                    continue;
                }
                let w = pre[t] as usize;
                pred_offsets[w] -= 1;
                pred_nums[pred_offsets[w] as usize] = if garbage && w <= n_reachable as usize {
                    SKIPPED_PRED
                } else {
                    v
                };
            }
        }

        // Semidominators, in reverse preorder. The path-compressed forest keeps, per
        // vertex, its forest ancestor and the smallest semidominator on the compressed
        // path (instead of the vertex holding it, as in the textbook `label`): `eval` is
        // then one 8-byte read per step, with no second lookup of the label's
        // semidominator; these reads are random and dominate the pass.
        let mut forest: Vec<Forest> = mem::with_capacity(count);
        forest.extend(parent.iter().enumerate().map(|(w, &p)| Forest {
            ancestor: p,
            best: w as u32,
        }));
        let mut semi: Vec<u32> = mem::filled(count, SUPER);
        let mut eval_stack: Vec<u32> = Vec::new();
        for w in (1..count).rev() {
            // The forest entries of a later vertex's predecessors are random reads:
            // start them now, so they arrive while this vertex is being worked on.
            if let Some(ahead) = w.checked_sub(SEMI_PREFETCH_AHEAD) {
                let start = pred_offsets[ahead] as usize;
                let end = pred_offsets[ahead + 1] as usize;
                for &v in &pred_nums[start..end] {
                    if v as usize > ahead && v != SKIPPED_PRED {
                        mem::prefetch(&forest, v as usize);
                    }
                }
            }
            let mut s = parent[w];
            if is_root_child(order[w].index()) {
                s = SUPER;
            } else {
                let preds = &pred_nums[pred_offsets[w] as usize..pred_offsets[w + 1] as usize];
                for &v in preds {
                    if s == SUPER {
                        // Nothing is smaller: skip the remaining evaluations.
                        break;
                    }
                    let candidate = if (v as usize) <= w {
                        v
                    } else if v == SKIPPED_PRED {
                        continue;
                    } else {
                        eval(v, w as u32 + 1, &mut forest, &mut eval_stack)
                    };
                    s = s.min(candidate);
                }
            }
            semi[w] = s;
            forest[w].best = s;
        }
        drop(eval_stack);
        drop(forest);
        drop(pred_nums);
        drop(pred_offsets);

        // idom(w) = NCA(parent(w), semi(w)) in the dominator tree built so far; the
        // `parent` array becomes the immediate dominators.
        let mut idom = parent;
        for w in 1..count {
            let target = semi[w];
            let mut c = idom[w];
            while c > target {
                c = idom[c as usize];
            }
            idom[w] = c;
        }
        drop(semi);

        let sizes = &snapshot.nodes.size;
        let mut retained: Vec<u64> = mem::with_capacity(count);
        retained.push(0);
        retained.extend(order[1..].iter().map(|v| sizes[v.index()]));
        for w in (1..count).rev() {
            let d = idom[w] as usize;
            retained[d] += retained[w];
        }

        DominatorTree {
            pre,
            order,
            idom,
            retained,
            children: std::sync::OnceLock::new(),
            n_reachable,
            scratch: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Number of nodes (the super-root not included).
    pub fn n_nodes(&self) -> usize {
        self.pre.len()
    }

    fn num(&self, node: NodeIdx) -> Option<usize> {
        self.pre.get(node.index()).map(|&p| p as usize)
    }

    /// Immediate dominator of `node`; `None` when it is the super-root (roots, nodes
    /// held by several roots, attached unreachable nodes) or `node` is out of range.
    pub fn immediate_dominator(&self, node: NodeIdx) -> Option<NodeIdx> {
        let d = self.idom[self.num(node)?];
        (d != SUPER).then(|| self.order[d as usize])
    }

    /// Nodes whose immediate dominator is `node`, largest retained size first.
    /// (Sorted on each call, in time proportional to this node's children only: the
    /// super-root can have millions, so the tree does not pay to sort every list.)
    pub fn dominated_children(&self, node: NodeIdx) -> Vec<NodeIdx> {
        match self.num(node) {
            Some(w) => self.children_of_num(w),
            None => Vec::new(),
        }
    }

    /// Nodes immediately dominated by the super-root, largest retained size first.
    pub fn super_root_children(&self) -> Vec<NodeIdx> {
        self.children_of_num(SUPER as usize)
    }

    fn children_csr(&self) -> &(Vec<u32>, Vec<u32>) {
        self.children.get_or_init(|| {
            let count = self.idom.len();
            let mut offsets = mem::filled(count + 1, 0u32);
            for &d in &self.idom[1..] {
                offsets[d as usize + 1] += 1;
            }
            for i in 0..count {
                offsets[i + 1] += offsets[i];
            }
            // Filled from the back, each list comes out in DFS order; afterwards
            // offsets[d] is back at d's start.
            for i in 0..count {
                offsets[i] = offsets[i + 1];
            }
            let mut children = mem::filled(count.saturating_sub(1), 0u32);
            for w in (1..count).rev() {
                let d = self.idom[w] as usize;
                offsets[d] -= 1;
                children[offsets[d] as usize] = w as u32;
            }
            (offsets, children)
        })
    }

    fn children_of_num(&self, w: usize) -> Vec<NodeIdx> {
        let (offsets, children) = self.children_csr();
        let mut list: Vec<u32> = children[offsets[w] as usize..offsets[w + 1] as usize].to_vec();
        list.sort_unstable_by(|&a, &b| {
            self.retained[b as usize]
                .cmp(&self.retained[a as usize])
                .then(a.cmp(&b))
        });
        list.into_iter().map(|c| self.order[c as usize]).collect()
    }

    /// Bytes that would be freed if `node` went away: the shallow sizes of every node it
    /// dominates, itself included. 0 for an out-of-range node.
    pub fn retained_size(&self, node: NodeIdx) -> u64 {
        self.num(node).map_or(0, |w| self.retained[w])
    }

    /// Sum of all shallow sizes (the super-root's retained size).
    pub fn total_size(&self) -> u64 {
        self.retained[SUPER as usize]
    }

    /// Whether a root reaches `node` (otherwise it was attached to the super-root as
    /// described in the module docs).
    pub fn is_reachable_from_roots(&self, node: NodeIdx) -> bool {
        self.num(node)
            .is_some_and(|w| w <= self.n_reachable as usize)
    }

    /// Whether `a` dominates `b` (every node dominates itself).
    pub fn dominates(&self, a: NodeIdx, b: NodeIdx) -> bool {
        let (Some(a), Some(mut w)) = (self.num(a), self.num(b)) else {
            return false;
        };
        // Dominators have smaller DFS numbers, so the walk can stop once below `a`.
        while w > a {
            w = self.idom[w] as usize;
        }
        w == a
    }

    /// Depth in the dominator tree: 1 for children of the super-root.
    pub fn depth(&self, node: NodeIdx) -> usize {
        let Some(mut w) = self.num(node) else {
            return 0;
        };
        let mut depth = 0;
        while w != SUPER as usize {
            w = self.idom[w] as usize;
            depth += 1;
        }
        depth
    }

    /// The `limit` nodes with the largest retained sizes, largest first (ties: lower
    /// DFS number, i.e. closer to the roots, first).
    pub fn top_retained(&self, limit: usize) -> Vec<(NodeIdx, u64)> {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        if limit == 0 {
            return Vec::new();
        }
        // Min-heap of the best `limit` seen so far, keyed so that the worst is on top.
        let mut heap: BinaryHeap<Reverse<(u64, Reverse<u32>)>> =
            BinaryHeap::with_capacity(limit + 1);
        for w in 1..self.retained.len() {
            let key = Reverse((self.retained[w], Reverse(w as u32)));
            if heap.len() < limit {
                heap.push(key);
            } else if let Some(worst) = heap.peek() {
                if key < *worst {
                    heap.pop();
                    heap.push(key);
                }
            }
        }
        let mut best: Vec<(u64, u32)> = heap
            .into_iter()
            .map(|Reverse((r, Reverse(w)))| (r, w))
            .collect();
        best.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        best.into_iter()
            .map(|(r, w)| (self.order[w as usize], r))
            .collect()
    }

    /// For each target set, the deepest node that dominates the most targets (strictly:
    /// a target does not count for itself), with that count. `None` when no node other
    /// than the super-root dominates any target.
    ///
    /// Small sets walk up from each target; large ones (or deep trees) use one
    /// bottom-up pass over all nodes.
    pub fn most_dominating(&self, targets: &[NodeIdx]) -> Option<(NodeIdx, u64)> {
        let mut nums: Vec<u32> = targets
            .iter()
            .filter_map(|&t| self.num(t).map(|w| w as u32))
            .collect();
        nums.sort_unstable();
        nums.dedup();
        let count = self.idom.len();
        if nums.len() < count / 64 {
            if let Some(found) = self.most_dominating_by_walk(&nums, count) {
                return found;
            }
        }
        self.most_dominating_by_pass(&nums)
    }

    /// Walks up from each target, counting per ancestor. Gives up (returns `None`)
    /// once it has taken as many steps as there are nodes, where the pass is cheaper.
    fn most_dominating_by_walk(
        &self,
        nums: &[u32],
        budget: usize,
    ) -> Option<Option<(NodeIdx, u64)>> {
        let mut counts: crate::paths::NodeMap<u64> = Default::default();
        let mut steps = 0usize;
        for &t in nums {
            let mut w = self.idom[t as usize];
            while w != SUPER {
                *counts.entry(w).or_insert(0) += 1;
                w = self.idom[w as usize];
                steps += 1;
                if steps > budget {
                    return None;
                }
            }
        }
        // Deepest among the most covering: the largest DFS number wins ties, since a
        // dominated node always numbers above its dominators.
        let best = counts.into_iter().max_by_key(|&(w, c)| (c, w));
        Some(best.map(|(w, c)| (self.order[w as usize], c)))
    }

    fn most_dominating_by_pass(&self, nums: &[u32]) -> Option<(NodeIdx, u64)> {
        let count = self.idom.len();
        // below[w]: targets strictly inside w's dominator subtree, with w's own target
        // flag in the top bit. One 4-byte array (instead of a count and a flag array)
        // keeps the random updates of the bottom-up pass to one cache line each.
        // Counts stay below 2^31: there are fewer than 2^32 - 1 nodes, and a target
        // set of 2^31 distinct nodes would need more memory than this machine has.
        const TARGET: u32 = 1 << 31;
        let mut kept = self.scratch.try_lock().ok();
        let mut own = Vec::new();
        let below: &mut Vec<u32> = match kept.as_deref_mut() {
            Some(v) => v,
            None => &mut own,
        };
        below.clear();
        below.resize(count, 0);
        for &t in nums {
            below[t as usize] = TARGET;
        }
        // A node's count is final when the reverse pass reaches it (everything it
        // dominates numbers above it), so the best is picked in the same pass. Going
        // down, a strictly larger count wins: among equal counts the largest DFS
        // number (the deepest) is kept.
        let mut best: Option<(usize, u32)> = None;
        for w in (1..count).rev() {
            let b = below[w];
            let c = b & !TARGET;
            if c > 0 && best.is_none_or(|(_, best_count)| c > best_count) {
                best = Some((w, c));
            }
            let d = self.idom[w] as usize;
            below[d] += c + (b >> 31);
        }
        best.map(|(w, c)| (self.order[w], u64::from(c)))
    }
}

/// Number of edges pointing at each node: the first pass of the predecessor lists of
/// [`DominatorTree::compute`]. Reads only the edge targets, nothing of the DFS, so
/// [`GraphIndex`](crate::GraphIndex) counts them on its helper thread during the DFS.
pub(crate) fn in_degrees(snapshot: &Snapshot) -> Vec<u32> {
    let targets = &snapshot.edges.targets;
    let mut in_degree: Vec<u32> = mem::filled(snapshot.n_nodes(), 0u32);
    for (pos, t) in targets.iter().enumerate() {
        if let Some(later) = targets.get(pos + PRED_PREFETCH_AHEAD) {
            mem::prefetch(&in_degree, later.index());
        }
        in_degree[t.index()] += 1;
    }
    in_degree
}

/// Per-DFS-number state of the path-compressed forest of the semidominator pass.
#[derive(Clone, Copy)]
struct Forest {
    /// Path-compressed ancestor (the DFS parent until compressed).
    ancestor: u32,
    /// Smallest semidominator on the compressed path from this vertex up to (not
    /// including) `ancestor`.
    best: u32,
}

/// Path-compressing evaluation: the smallest semidominator on the forest path from
/// `v` up to (excluding) its forest root, compressing that path. Vertices numbered
/// `last_linked` and above are linked. Iterative: the path is collected on `stack`
/// first.
fn eval(v: u32, last_linked: u32, forest: &mut [Forest], stack: &mut Vec<u32>) -> u32 {
    if forest[v as usize].ancestor < last_linked {
        return forest[v as usize].best;
    }
    let mut x = v;
    loop {
        stack.push(x);
        x = forest[x as usize].ancestor;
        if forest[x as usize].ancestor < last_linked {
            break;
        }
    }
    // `x` is the top linked vertex; compress everything below it onto x's ancestor.
    let top_ancestor = forest[x as usize].ancestor;
    let mut p_best = forest[x as usize].best;
    while let Some(y) = stack.pop() {
        let entry = &mut forest[y as usize];
        entry.ancestor = top_ancestor;
        if p_best < entry.best {
            entry.best = p_best;
        } else {
            p_best = entry.best;
        }
    }
    forest[v as usize].best
}
