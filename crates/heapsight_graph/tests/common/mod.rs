//! Test helpers: a tiny text format for heaps, a seeded RNG, naive reference algorithms.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, VecDeque};

use heapsight_snapshot::model::{LabelKind, NodeIdx, RootKind, Snapshot, SnapshotBuilder};

/// A heap built from text, with node names for lookups.
pub struct Heap {
    pub snapshot: Snapshot,
    pub names: BTreeMap<String, NodeIdx>,
}

impl Heap {
    pub fn node(&self, name: &str) -> NodeIdx {
        match self.names.get(name) {
            Some(n) => *n,
            None => panic!("no node named {name:?} in the test heap"),
        }
    }
    pub fn name_of(&self, node: NodeIdx) -> String {
        self.names
            .iter()
            .find(|(_, n)| **n == node)
            .map(|(k, _)| k.clone())
            .unwrap_or_else(|| format!("#{}", node.0))
    }
}

/// Parses a heap description, one statement per line (`#` starts a comment):
///
/// ```text
/// m: module 56                 node `m` of type `module`, 56 bytes (default 16)
/// root module app = m          root of kind module|thread|interpreter|external named `app`
/// m.__dict__ -> md             Attr edge
/// md['_CACHE'] -> c            Key edge
/// c[repr:42] -> x              KeyRepr edge
/// l[3] -> x                    Index edge
/// f local x -> y               Local edge
/// s {} -> x                    SetItem edge
/// d <key> -> k                 KeyObject edge
/// a -> b                       unnamed edge
/// ```
/// Nodes never declared are `object`s of 16 bytes. Module nodes get the IS_MODULE flag.
pub fn heap(text: &str) -> Heap {
    let mut b = SnapshotBuilder::new();
    let mut names: BTreeMap<String, NodeIdx> = BTreeMap::new();
    let lines: Vec<&str> = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .collect();
    // Declarations first, in order, so indices follow the text.
    for line in &lines {
        if let Some((name, rest)) = line.split_once(':') {
            if !name.contains(' ') && !name.contains('[') && !line.contains("->") {
                let mut parts = rest.split_whitespace();
                let ty = parts.next().expect("type after ':'");
                let size: u64 = parts.next().map_or(16, |s| s.parse().expect("size"));
                let node = b.node(ty, size);
                names.insert(name.trim().to_owned(), node);
            }
        }
    }
    let mut get = |b: &mut SnapshotBuilder, name: &str| -> NodeIdx {
        let name = name.trim();
        if let Some(n) = names.get(name) {
            return *n;
        }
        let n = b.node("object", 16);
        names.insert(name.to_owned(), n);
        n
    };
    for line in &lines {
        if line.contains(':') && !line.contains("->") && !line.starts_with("root ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("root ") {
            let (lhs, node) = rest.split_once('=').expect("root ... = node");
            let mut parts = lhs.split_whitespace();
            let kind = match parts.next().expect("root kind") {
                "module" => RootKind::Module,
                "thread" => RootKind::Thread,
                "interpreter" => RootKind::Interpreter,
                "external" => RootKind::External,
                other => panic!("unknown root kind {other}"),
            };
            let root_name = parts.next().unwrap_or("");
            let node = get(&mut b, node);
            b.root(kind, node, root_name, 1);
            continue;
        }
        let (lhs, dst) = line.split_once("->").expect("edge `src ... -> dst`");
        let lhs = lhs.trim();
        // Source before destination, so undeclared nodes are numbered in reading order.
        let src_name = lhs.split(['[', ' ', '.']).next().unwrap_or(lhs);
        get(&mut b, src_name);
        let dst_node = get(&mut b, dst);
        if let Some(open) = lhs.find('[') {
            let src = get(&mut b, &lhs[..open]);
            let inner = lhs[open + 1..].strip_suffix(']').expect("closing ]");
            if let Some(key) = inner.strip_prefix('\'').and_then(|k| k.strip_suffix('\'')) {
                b.edge_named(src, dst_node, LabelKind::Key, &key.replace("\\'", "'"));
            } else if let Some(repr) = inner.strip_prefix("repr:") {
                b.edge_named(src, dst_node, LabelKind::KeyRepr, repr);
            } else {
                b.edge(
                    src,
                    dst_node,
                    LabelKind::Index,
                    inner.parse().expect("index"),
                );
            }
        } else if let Some((src, local)) = lhs.split_once(" local ") {
            let src = get(&mut b, src);
            b.edge_named(src, dst_node, LabelKind::Local, local.trim());
        } else if let Some(src) = lhs.strip_suffix(" {}") {
            let src = get(&mut b, src);
            b.edge(src, dst_node, LabelKind::SetItem, 0);
        } else if let Some(src) = lhs.strip_suffix(" <key>") {
            let src = get(&mut b, src);
            b.edge(src, dst_node, LabelKind::KeyObject, 0);
        } else if let Some((src, attr)) = lhs.split_once('.') {
            let src = get(&mut b, src);
            b.edge_named(src, dst_node, LabelKind::Attr, attr.trim());
        } else {
            let src = get(&mut b, lhs);
            b.edge(src, dst_node, LabelKind::None, 0);
        }
    }
    let mut snapshot = b.finish();
    // Module flags make the heap look like a capture's; nothing here depends on them.
    for (i, t) in snapshot.nodes.type_idx.iter().enumerate() {
        if snapshot
            .types
            .name
            .get(t.index())
            .and_then(|s| snapshot.strings.get(*s))
            == Some("module")
        {
            snapshot.nodes.flags[i] |= heapsight_snapshot::model::node_flags::IS_MODULE;
        }
    }
    snapshot.validate().expect("test heap is valid");
    Heap { snapshot, names }
}

/// xorshift64*: deterministic, dependency-free randomness for generated tests.
pub struct Rng(pub u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A random snapshot: `n` nodes, about `n * degree` edges, a few roots of mixed kinds.
pub fn random_snapshot(rng: &mut Rng, n: usize, edges: usize, n_roots: usize) -> Snapshot {
    let mut b = SnapshotBuilder::new();
    let types = ["dict", "list", "app.A", "app.B", "str"];
    let nodes: Vec<NodeIdx> = (0..n)
        .map(|_| {
            let t = types[rng.below(types.len() as u64) as usize];
            b.node(t, 1 + rng.below(100))
        })
        .collect();
    for _ in 0..edges {
        let s = nodes[rng.below(n as u64) as usize];
        let t = nodes[rng.below(n as u64) as usize];
        match rng.below(4) {
            0 => b.edge_named(s, t, LabelKind::Attr, &format!("a{}", rng.below(3))),
            1 => b.edge_named(s, t, LabelKind::Key, &format!("k{}", rng.below(3))),
            2 => b.edge(s, t, LabelKind::Index, rng.below(3) as u32),
            _ => b.edge(s, t, LabelKind::None, 0),
        }
    }
    let kinds = [
        RootKind::Module,
        RootKind::Thread,
        RootKind::External,
        RootKind::Interpreter,
    ];
    for i in 0..n_roots {
        let node = nodes[rng.below(n as u64) as usize];
        let kind = kinds[rng.below(kinds.len() as u64) as usize];
        b.root(kind, node, &format!("r{i}"), 1);
    }
    b.finish()
}

/// The graph the dominator tree is defined on, spelled out naively: vertex `n` is the
/// super-root, with edges to every root and to each node that is unreachable from the
/// roots and from the nodes attached before it (in index order). Edges from unreachable
/// nodes into reachable ones are left out of `pred`.
pub struct Augmented {
    pub n: usize,
    pub succ: Vec<Vec<usize>>,
    pub pred: Vec<Vec<usize>>,
    /// Nodes reachable from real roots.
    pub reachable: Vec<bool>,
}

pub fn augmented(snapshot: &Snapshot) -> Augmented {
    let n = snapshot.n_nodes();
    let mut succ: Vec<Vec<usize>> = vec![Vec::new(); n + 1];
    for (v, s) in succ.iter_mut().enumerate().take(n) {
        let range = snapshot.edges.range_of(NodeIdx(v as u32));
        s.extend(snapshot.edges.targets[range].iter().map(|t| t.index()));
    }
    let mut seen = vec![false; n];
    let mark = |start: usize, seen: &mut Vec<bool>| {
        let mut q = VecDeque::from([start]);
        seen[start] = true;
        while let Some(v) = q.pop_front() {
            for &t in &succ[v] {
                if !seen[t] {
                    seen[t] = true;
                    q.push_back(t);
                }
            }
        }
    };
    let mut root_edges = Vec::new();
    for r in &snapshot.roots {
        let v = r.node.index();
        if !root_edges.contains(&v) {
            root_edges.push(v);
        }
        if !seen[v] {
            mark(v, &mut seen);
        }
    }
    let reachable = seen.clone();
    for v in 0..n {
        if !seen[v] {
            root_edges.push(v);
            mark(v, &mut seen);
        }
    }
    succ[n] = root_edges;
    let mut pred = vec![Vec::new(); n + 1];
    for (v, s) in succ.iter().enumerate() {
        for &t in s {
            // Garbage does not count as a way into the live heap.
            let garbage_into_live = v < n && !reachable[v] && reachable[t];
            if !garbage_into_live {
                pred[t].push(v);
            }
        }
    }
    Augmented {
        n,
        succ,
        pred,
        reachable,
    }
}

/// Dominator sets by iterative dataflow: dom(v) = {v} ∪ ⋂ dom(p) over predecessors.
pub fn naive_dominator_sets(g: &Augmented) -> Vec<Vec<bool>> {
    let total = g.n + 1;
    let mut dom = vec![vec![true; total]; total];
    dom[g.n] = vec![false; total];
    dom[g.n][g.n] = true;
    let mut changed = true;
    while changed {
        changed = false;
        for v in 0..g.n {
            let mut new = vec![true; total];
            for &p in &g.pred[v] {
                for (x, d) in new.iter_mut().enumerate() {
                    *d &= dom[p][x];
                }
            }
            if g.pred[v].is_empty() {
                new = vec![false; total];
            }
            new[v] = true;
            if new != dom[v] {
                dom[v] = new;
                changed = true;
            }
        }
    }
    dom
}

/// Immediate dominators from dominator sets: the strict dominator with the most
/// dominators of its own. `None` means the super-root.
pub fn naive_idoms(g: &Augmented, dom: &[Vec<bool>]) -> Vec<Option<usize>> {
    (0..g.n)
        .map(|v| {
            let best = (0..=g.n)
                .filter(|&d| d != v && dom[v][d])
                .max_by_key(|&d| dom[d].iter().filter(|x| **x).count())
                .expect("the super-root dominates everything");
            (best != g.n).then_some(best)
        })
        .collect()
}

/// Breadth-first distance from the roots with the tier rule: Module/Thread/Interpreter
/// roots first; External roots only for what those do not reach.
pub fn naive_root_distances(snapshot: &Snapshot) -> HashMap<usize, usize> {
    let g = augmented(snapshot);
    let mut dist: HashMap<usize, usize> = HashMap::new();
    for external in [false, true] {
        let mut q = VecDeque::new();
        for r in &snapshot.roots {
            if (r.kind == RootKind::External) == external && !dist.contains_key(&r.node.index()) {
                dist.insert(r.node.index(), 0);
                q.push_back(r.node.index());
            }
        }
        while let Some(v) = q.pop_front() {
            let d = dist[&v];
            for &t in &g.succ[v] {
                if let std::collections::hash_map::Entry::Vacant(e) = dist.entry(t) {
                    e.insert(d + 1);
                    q.push_back(t);
                }
            }
        }
    }
    dist
}
