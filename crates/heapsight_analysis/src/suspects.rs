//! Leak suspects: the types whose growth between two snapshots survives, ranked, each
//! explained by how it is held (retainer shapes, a full path, the accumulation point)
//! and matched against the fix catalogue.
//!
//! # What counts as growth of a type
//! Work happens on B's dominator tree, top-down, once:
//! - In-flight work is transient and ignored: new objects dominated by a thread root
//!   through a chain of new objects only (the capturing thread's frames, a request being
//!   served). An object that existed in A breaks the chain, so a long-lived container
//!   held by a long-lived frame (a cache local to `main()`) still counts. Objects no root
//!   reaches (garbage awaiting collection) are ignored too.
//! - A new object of a *byproduct* type ([`BYPRODUCT_TYPES`]: builtin containers,
//!   scalars, cells, bound methods, frames) that is dominated by a new object of another
//!   type belongs to it: an instance's `__dict__`, its lists and strings are folded into
//!   the instance's type. The nearest new non-byproduct dominator, through a chain of new
//!   objects, is the *anchor*. Byproducts with no such anchor stand for themselves.
//! - Objects that existed in A and grew in place (a list, dict or bytearray) add their
//!   size increase; when such an object is the accumulation point of another suspect
//!   (the dict all the new sessions sit in), its growth moves to that suspect, and so do
//!   new byproducts that point directly dominates (the dict's new str keys).
//! - Churn discount: if a type gained fewer objects net (B - A) than new ones survive,
//!   the excess replaced freed ones; the count is capped at the net gain and the bytes
//!   prorated.
//!
//! # Score
//! `score = max(count growth / total count growth, bytes growth / total bytes growth)`
//! over all candidate types: a type's share of the surviving growth by count or by
//! bytes, whichever is larger. One bytearray that gained 8 MiB out of 10 MiB of total
//! growth scores 0.8, as do 8,000 small objects out of 10,000 new ones. Ties go to bytes.
//! Byproduct types compete on bytes only (and their counts stay out of the count
//! total): 4,000 new ints or tuples are a side effect of some leak, not a finding,
//! unless their bytes weigh.

use std::collections::HashMap;

use heapsight_graph::{accumulation_point, path_steps, render_path, DominatorTree, ShapeIndex};
use heapsight_snapshot::model::{LabelKind, NodeIdx, RootKind, Snapshot, TypeIdx};
use serde::Serialize;

use crate::diff::SnapshotDiff;
use crate::evidence::PathEvidence;
use crate::rules::{suggest_fixes, FixSuggestion};

/// Types whose new objects are attributed to the new object that owns them (see the
/// module docs): builtin containers and scalars, and the interpreter's plumbing (frames,
/// tracebacks, coroutines a task runs, the context it copied). User classes are never
/// byproducts.
pub const BYPRODUCT_TYPES: &[&str] = &[
    "dict",
    "list",
    "tuple",
    "set",
    "frozenset",
    "str",
    "bytes",
    "bytearray",
    "int",
    "float",
    "complex",
    "bool",
    "cell",
    "method",
    "function",
    "builtin_function_or_method",
    "weakref",
    "weakref.ReferenceType",
    "weakproxy",
    "weakcallableproxy",
    "frame",
    "traceback",
    "coroutine",
    "generator",
    "async_generator",
    "_contextvars.Context",
    "memoryview",
    "collections.deque",
    "collections.OrderedDict",
    "collections.defaultdict",
    "types.SimpleNamespace",
];

/// Whether `type_name` is folded into its owner when new objects of it are owned.
pub fn is_byproduct(type_name: &str) -> bool {
    BYPRODUCT_TYPES.contains(&type_name)
}

/// Graph structures of one snapshot, built once and shared by the analyses: the graph
/// view, dominator tree and shortest-path tree with every node's shape
/// ([`GraphIndex::build`] computes them on two threads where the machine has two cores).
pub use heapsight_graph::GraphIndex as HeapIndex;

/// Tuning of the suspect search. Defaults are the documented behaviour.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct SuspectOptions {
    /// Suspects returned at most.
    pub max_suspects: usize,
    /// Retainer shapes kept per suspect.
    pub shapes_per_suspect: usize,
    /// Types below this score are not suspects.
    pub min_score: f64,
}

impl Default for SuspectOptions {
    fn default() -> Self {
        SuspectOptions {
            max_suspects: 10,
            shapes_per_suspect: 3,
            min_score: 0.01,
        }
    }
}

/// Growth attributed to a suspect from objects of another type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FoldedGrowth {
    /// The folded type.
    pub type_name: String,
    /// Objects of that type attributed to the suspect.
    pub count: u64,
    /// Their bytes.
    pub bytes: u64,
    /// `owned`: new objects dominated by the suspect's new objects;
    /// `accumulation_point_grew`: the container holding them grew in place;
    /// `held_alongside`: new objects held directly by that container (its keys).
    pub how: &'static str,
}

/// One way the suspect's objects are held, with its share.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ShapeShare {
    /// `module app: ._SESSIONS[*] -> app.UserSession`.
    pub shape: String,
    /// `module app: ._SESSIONS[*]`.
    pub holder: String,
    /// Objects with this shape.
    pub count: u64,
    /// Their own sizes.
    pub bytes: u64,
    /// Share of the suspect's objects with this shape, 0-100.
    pub share_percent: f64,
    /// Full path of one object with this shape.
    pub example_path: Vec<String>,
}

/// Where the suspect's objects accumulate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Accumulation {
    /// Type of the accumulation point.
    pub type_name: String,
    /// Path from a root to the accumulation point.
    pub path: Vec<String>,
    /// Bytes freed if it went away.
    pub retained_bytes: u64,
    /// Suspect objects it dominates, out of `total_targets`.
    pub dominated_targets: u64,
    /// Suspect objects given.
    pub total_targets: u64,
}

/// A container of fixed capacity that holds the suspect's objects
/// (`functools.lru_cache(maxsize=N)`, `deque(maxlen=N)`): they stop growing at
/// `capacity`, so the growth is a cache filling up, not a leak.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BoundedHolder {
    /// `functools._lru_cache_wrapper`, `collections.deque`.
    pub type_name: String,
    /// Path from a root to the container.
    pub path: Vec<String>,
    /// Entries it can hold.
    pub capacity: u64,
    /// Entries it holds now.
    pub entries: u64,
}

/// A type whose growth survives, with the evidence and the fixes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Suspect {
    /// 1 for the top suspect.
    pub rank: u32,
    /// The suspect type.
    pub type_name: String,
    /// See the module docs; in [0, 1].
    pub score: f64,
    /// `count_growth` over the total count growth of all candidates (0 for byproduct types).
    pub count_share: f64,
    /// `bytes_growth` over the total byte growth of all candidates.
    pub bytes_share: f64,
    /// New surviving objects of the type after the churn discount.
    pub count_growth: u64,
    /// Bytes of those objects and what they own, plus in-place growth.
    pub bytes_growth: u64,
    /// New surviving objects of the type before the churn discount.
    pub new_survivors: u64,
    /// Existing objects of the type that grew in place.
    pub grown_in_place: u64,
    /// Net change of the type's count and bytes (B - A), from the diff.
    pub net_count_delta: i64,
    /// Net change of the type's bytes (B - A).
    pub net_bytes_delta: i64,
    /// Growth of other types attributed to this one.
    pub folded: Vec<FoldedGrowth>,
    /// Most common retainer shapes first.
    pub shapes: Vec<ShapeShare>,
    /// Path to one object of the most common shape.
    pub representative_path: Vec<String>,
    /// The deepest object dominating most of the suspect's objects.
    pub accumulation_point: Option<Accumulation>,
    /// Set when the accumulation point is a container of fixed capacity: the growth
    /// stops there, so this suspect is not a leak.
    pub bounded_by: Option<BoundedHolder>,
    /// Fix suggestions matched on the representative path.
    pub fixes: Vec<FixSuggestion>,
    /// One sentence for terminals.
    pub headline: String,
}

const NO_ANCHOR: u32 = u32::MAX;

/// Per-type accumulation while scanning B.
#[derive(Default)]
struct Candidate {
    /// New surviving objects of this type that anchor themselves.
    anchors: Vec<NodeIdx>,
    /// Bytes of the anchors and of everything folded into them.
    anchored_bytes: u64,
    /// Folded byproducts by type: (count, bytes).
    folded: HashMap<TypeIdx, (u64, u64)>,
    /// Existing objects of this type that grew, with their gain.
    grown: Vec<(NodeIdx, u64)>,
    /// Growth moved here from other candidates, and its bytes.
    moved_in: Vec<FoldedGrowth>,
    moved_in_bytes: u64,
    /// Net count change of the type (B - A), floored at 0.
    net_count: u64,
    /// The type is a byproduct type: it competes on bytes only.
    byproduct: bool,
    /// Settled figures (see [`Candidate::settle`]).
    count: u64,
    bytes: u64,
}

impl Candidate {
    fn targets(&self) -> Vec<NodeIdx> {
        self.anchors
            .iter()
            .copied()
            .chain(self.grown.iter().map(|g| g.0))
            .collect()
    }

    /// Applies the churn discount and sums the byte sources.
    fn settle(&mut self) {
        let own = self.anchors.len() as u64;
        self.count = own.min(self.net_count);
        let new_bytes = if own > 0 {
            (u128::from(self.anchored_bytes) * u128::from(self.count) / u128::from(own)) as u64
        } else {
            0
        };
        self.bytes = new_bytes + self.grown.iter().map(|g| g.1).sum::<u64>() + self.moved_in_bytes;
    }

    fn is_empty(&self) -> bool {
        self.count == 0 && self.bytes == 0
    }
}

/// Per node of B: its anchor (see the module docs) or [`NO_ANCHOR`], and whether it is
/// transient (a thread root, or new and dominated by a transient node).
fn anchors_of_new_objects(index: &HeapIndex, diff: &SnapshotDiff) -> (Vec<u32>, Vec<bool>) {
    let snapshot = index.graph.snapshot();
    let dom = &index.dominators;
    let n = snapshot.n_nodes();
    let mut anchor = vec![NO_ANCHOR; n];
    let mut transient = vec![false; n];
    // Byproduct-ness per type, so the walk compares no strings.
    let byproduct_type: Vec<bool> = snapshot
        .types
        .name
        .iter()
        .map(|&s| is_byproduct(snapshot.str(s).unwrap_or("")))
        .collect();
    // Each node depends on its immediate dominator only, so nodes are resolved top-down
    // along their dominator chain, each exactly once: O(n) with no recursion.
    let mut resolved = vec![false; n];
    let mut chain: Vec<NodeIdx> = Vec::new();
    for start in 0..n {
        let mut u = NodeIdx(start as u32);
        while !resolved[u.index()] {
            chain.push(u);
            match dom.immediate_dominator(u) {
                Some(p) => u = p,
                None => break,
            }
        }
        while let Some(v) = chain.pop() {
            resolved[v.index()] = true;
            let parent = dom.immediate_dominator(v);
            let is_thread_root = index
                .graph
                .root_of(v)
                .is_some_and(|r| index.graph.root(r).kind == RootKind::Thread);
            transient[v.index()] =
                is_thread_root || (diff.is_new(v) && parent.is_some_and(|p| transient[p.index()]));
            if diff.is_new(v) && !transient[v.index()] && dom.is_reachable_from_roots(v) {
                let byproduct = byproduct_type
                    .get(type_of(snapshot, v).index())
                    .copied()
                    .unwrap_or(false);
                anchor[v.index()] = if !byproduct {
                    v.0
                } else {
                    match parent {
                        Some(p) if anchor[p.index()] != NO_ANCHOR => anchor[p.index()],
                        _ => v.0,
                    }
                };
            }
        }
    }
    (anchor, transient)
}

fn type_of(snapshot: &Snapshot, node: NodeIdx) -> TypeIdx {
    snapshot
        .nodes
        .type_idx
        .get(node.index())
        .copied()
        .unwrap_or(TypeIdx(u32::MAX))
}

fn type_name_of(snapshot: &Snapshot, t: TypeIdx) -> String {
    snapshot
        .types
        .name
        .get(t.index())
        .and_then(|s| snapshot.str(*s))
        .unwrap_or("?")
        .to_owned()
}

/// Ranks the types of `after` (indexed by `index`) whose growth since `diff`'s A survives.
pub fn find_suspects(
    index: &HeapIndex,
    diff: &SnapshotDiff,
    options: &SuspectOptions,
) -> Vec<Suspect> {
    let snapshot = index.graph.snapshot();
    let dom = &index.dominators;
    let (anchor, transient) = anchors_of_new_objects(index, diff);
    let mut candidates: HashMap<TypeIdx, Candidate> = HashMap::new();
    // Bytes owned by each anchor, itself included.
    let mut anchor_bytes: HashMap<u32, u64> = HashMap::new();
    for (i, &a) in anchor.iter().enumerate() {
        if a == NO_ANCHOR {
            continue;
        }
        let node = NodeIdx(i as u32);
        let size = snapshot.nodes.size.get(i).copied().unwrap_or(0);
        let owner = NodeIdx(a);
        *anchor_bytes.entry(a).or_default() += size;
        let entry = candidates.entry(type_of(snapshot, owner)).or_default();
        entry.anchored_bytes += size;
        if owner == node {
            entry.anchors.push(node);
        } else {
            let folded = entry.folded.entry(type_of(snapshot, node)).or_default();
            folded.0 += 1;
            folded.1 += size;
        }
    }
    for &(node, delta) in &diff.grown_in_place {
        if transient.get(node.index()).copied().unwrap_or(true)
            || !dom.is_reachable_from_roots(node)
        {
            continue;
        }
        candidates
            .entry(type_of(snapshot, node))
            .or_default()
            .grown
            .push((node, delta));
    }
    let net_by_name: HashMap<&str, i64> = diff
        .types
        .iter()
        .map(|g| (g.type_name.as_str(), g.count_delta))
        .collect();
    for (t, c) in candidates.iter_mut() {
        let name = type_name_of(snapshot, *t);
        c.net_count = net_by_name.get(name.as_str()).copied().unwrap_or(0).max(0) as u64;
        c.byproduct = is_byproduct(&name);
        c.settle();
    }
    candidates.retain(|_, c| !c.is_empty());
    // Shares are normalised by the totals over every candidate; folding below moves
    // growth between candidates and drops the counts of folded objects, so the totals
    // are adjusted by what changed among the leading candidates.
    let totals = |cands: &mut dyn Iterator<Item = &Candidate>| {
        cands.fold((0u64, 0u64), |acc, c| {
            let count = if c.byproduct { 0 } else { c.count };
            (acc.0 + count, acc.1 + c.bytes)
        })
    };
    let (total_count, total_bytes) = totals(&mut candidates.values());
    let prelim_score = |c: &Candidate| {
        let share = |part: u64, whole: u64| {
            if whole > 0 {
                part as f64 / whole as f64
            } else {
                0.0
            }
        };
        let bytes_share = share(c.bytes, total_bytes);
        if c.byproduct {
            bytes_share
        } else {
            share(c.count, total_count).max(bytes_share)
        }
    };
    let mut ranked: Vec<(TypeIdx, Candidate)> = candidates.into_iter().collect();
    ranked.sort_by(|a, b| {
        prelim_score(&b.1)
            .total_cmp(&prelim_score(&a.1))
            .then(b.1.bytes.cmp(&a.1.bytes))
            .then(a.0.cmp(&b.0))
    });
    let kept = options.max_suspects.saturating_mul(2).max(1);
    let (rest_count, rest_bytes) = totals(&mut ranked.iter().skip(kept).map(|r| &r.1));
    ranked.truncate(kept);

    let points: Vec<Option<heapsight_graph::AccumulationPoint>> = ranked
        .iter()
        .map(|(_, c)| match (c.anchors.as_slice(), c.grown.as_slice()) {
            // A lone object that grew in place is itself where the memory accumulates;
            // its dominator would only name whatever happens to hold it.
            ([], [(node, _)]) => Some(point_at(index, *node, 1)),
            _ => accumulation_point(snapshot, dom, &index.paths, &c.targets()),
        })
        .collect();
    fold_into_accumulation_points(snapshot, dom, &mut ranked, &points, &anchor_bytes);
    let (kept_count, kept_bytes) = totals(&mut ranked.iter().map(|r| &r.1));
    let (total_count, total_bytes) = (kept_count + rest_count, kept_bytes + rest_bytes);
    let shares = |c: &Candidate| {
        let share = |part: u64, whole: u64| {
            if whole > 0 {
                part as f64 / whole as f64
            } else {
                0.0
            }
        };
        (share(c.count, total_count), share(c.bytes, total_bytes))
    };
    let score = |c: &Candidate| {
        let (count_share, bytes_share) = shares(c);
        if c.byproduct {
            bytes_share.min(1.0)
        } else {
            count_share.max(bytes_share).min(1.0)
        }
    };
    let by_score = |a: &(TypeIdx, Candidate), b: &(TypeIdx, Candidate)| {
        score(&b.1)
            .total_cmp(&score(&a.1))
            .then(b.1.bytes.cmp(&a.1.bytes))
            .then(a.0.cmp(&b.0))
    };

    let mut with_points: Vec<(
        (TypeIdx, Candidate),
        Option<heapsight_graph::AccumulationPoint>,
    )> = ranked.into_iter().zip(points).collect();
    with_points.retain(|((_, c), _)| !c.is_empty() && score(c) >= options.min_score);
    with_points.sort_by(|a, b| by_score(&a.0, &b.0));
    with_points.truncate(options.max_suspects);
    // The shapes were computed with the paths (see `HeapIndex::build`): grouping the
    // targets reads them and walks no path.
    let mut shape_index = index.shape_index();
    with_points
        .into_iter()
        .enumerate()
        .map(|(rank, ((t, c), point))| {
            let (count_share, bytes_share) = shares(&c);
            let count_share = if c.byproduct { 0.0 } else { count_share };
            let score = score(&c);
            let found = Found {
                rank,
                type_idx: t,
                candidate: c,
                point,
                count_share,
                bytes_share,
                score,
            };
            describe(index, &mut shape_index, diff, options, found)
        })
        .collect()
}

/// Rules whose holder has a fixed capacity yet is a memory problem worth fixing: Django
/// keeps up to 9000 queries per database connection with DEBUG on, megabytes per thread
/// of a production server.
const STILL_A_PROBLEM_WHEN_BOUNDED: &[&str] = &["HS009"];

/// The bounded container holding a suspect's objects: the accumulation point itself (a
/// deque, an lru_cache wrapper), its immediate dominator (the lru_cache wrapper owning the
/// cache dict), or one of `near_on_path`. Never further up: objects deeper inside a bounded
/// container's entries can grow without limit although the container cannot.
fn bounded_holder(
    index: &HeapIndex,
    point: Option<NodeIdx>,
    near_on_path: Vec<NodeIdx>,
) -> Option<BoundedHolder> {
    let snapshot = index.graph.snapshot();
    let bounded = |node: NodeIdx| {
        snapshot
            .bounds
            .binary_search_by_key(&node, |b| b.node)
            .ok()
            .and_then(|i| snapshot.bounds[i].capacity)
            .map(|capacity| (node, capacity))
    };
    let mut candidates: Vec<NodeIdx> = point.into_iter().collect();
    candidates.extend(point.and_then(|p| index.dominators.immediate_dominator(p)));
    candidates.extend(near_on_path);
    let (node, capacity) = candidates.into_iter().find_map(bounded)?;
    // A deque's length is its entry count; an lru_cache wrapper's entries are those of
    // the one dict it owns (its cache).
    let length_of = |n: NodeIdx| snapshot.nodes.length.get(n.index()).copied().unwrap_or(0);
    let entries = if snapshot.type_name(node) == "collections.deque" {
        length_of(node)
    } else {
        index
            .graph
            .successors(node)
            // The cache is an unnamed reference; `.__dict__` holds the wrapper's attributes.
            .filter(|&(e, _)| snapshot.edges.label_kinds[e.index()] == LabelKind::None)
            .map(|(_, t)| t)
            .filter(|&t| snapshot.type_name(t) == "dict")
            .map(length_of)
            .max()
            .unwrap_or(0)
    };
    Some(BoundedHolder {
        type_name: snapshot.type_name(node).to_owned(),
        path: index
            .paths
            .path_to(node)
            .map(|p| render_path(snapshot, &p))
            .unwrap_or_default(),
        capacity,
        entries,
    })
}

/// An accumulation point at `node` itself.
fn point_at(
    index: &HeapIndex,
    node: NodeIdx,
    total_targets: u64,
) -> heapsight_graph::AccumulationPoint {
    let steps = index
        .paths
        .path_to(node)
        .map(|p| path_steps(index.graph.snapshot(), &p))
        .unwrap_or_default();
    heapsight_graph::AccumulationPoint {
        node,
        dominated_targets: total_targets,
        total_targets,
        retained_bytes: index.dominators.retained_size(node),
        path: steps.iter().map(ToString::to_string).collect(),
        steps,
    }
}

/// Moves to a candidate S the growth that sits at S's accumulation point X but was
/// counted elsewhere: X itself when it grew in place (the dict the new sessions were
/// added to), and new byproduct objects X directly dominates (that dict's new keys).
/// Only points of non-byproduct candidates attract growth, so a user class is never
/// folded into a `dict`.
fn fold_into_accumulation_points(
    snapshot: &Snapshot,
    dom: &DominatorTree,
    ranked: &mut [(TypeIdx, Candidate)],
    points: &[Option<heapsight_graph::AccumulationPoint>],
    anchor_bytes: &HashMap<u32, u64>,
) {
    for i in 0..ranked.len() {
        let Some(point) = points[i].as_ref().map(|p| p.node) else {
            continue;
        };
        if is_byproduct(&type_name_of(snapshot, ranked[i].0)) {
            continue;
        }
        let mut moved: Vec<FoldedGrowth> = Vec::new();
        let mut moved_bytes = 0u64;
        for (j, (other_type, other)) in ranked.iter_mut().enumerate() {
            if i == j {
                continue;
            }
            let type_name = type_name_of(snapshot, *other_type);
            if let Some(pos) = other.grown.iter().position(|g| g.0 == point) {
                let (_, delta) = other.grown.remove(pos);
                moved_bytes += delta;
                moved.push(FoldedGrowth {
                    type_name: type_name.clone(),
                    count: 1,
                    bytes: delta,
                    how: "accumulation_point_grew",
                });
            }
            if !is_byproduct(&type_name) {
                continue;
            }
            let before = other.anchors.len();
            let mut bytes = 0u64;
            other.anchors.retain(|&t| {
                let held_at_point = dom.immediate_dominator(t) == Some(point);
                if held_at_point {
                    bytes += anchor_bytes.get(&t.0).copied().unwrap_or(0);
                }
                !held_at_point
            });
            let count = (before - other.anchors.len()) as u64;
            if count > 0 {
                other.anchored_bytes = other.anchored_bytes.saturating_sub(bytes);
                moved_bytes += bytes;
                moved.push(FoldedGrowth {
                    type_name,
                    count,
                    bytes,
                    how: "held_alongside",
                });
            }
            other.settle();
        }
        let target = &mut ranked[i].1;
        target.moved_in.extend(moved);
        target.moved_in_bytes += moved_bytes;
        target.settle();
    }
}

/// A ranked candidate on its way to becoming a [`Suspect`].
struct Found {
    rank: usize,
    type_idx: TypeIdx,
    candidate: Candidate,
    point: Option<heapsight_graph::AccumulationPoint>,
    count_share: f64,
    bytes_share: f64,
    score: f64,
}

fn describe(
    index: &HeapIndex,
    shape_index: &mut ShapeIndex,
    diff: &SnapshotDiff,
    options: &SuspectOptions,
    found: Found,
) -> Suspect {
    let snapshot = index.graph.snapshot();
    let Found {
        rank,
        type_idx: t,
        candidate: c,
        point,
        count_share,
        bytes_share,
        score,
    } = found;
    let type_name = type_name_of(snapshot, t);
    let targets = c.targets();
    let report = shape_index.shapes(&targets);
    let reachable = report
        .total_count
        .saturating_sub(report.unreachable_count)
        .max(1);
    let shapes: Vec<ShapeShare> = report
        .groups
        .iter()
        .take(options.shapes_per_suspect)
        .map(|g| ShapeShare {
            shape: g.text(),
            holder: g.holder.clone(),
            count: g.count,
            bytes: g.bytes,
            share_percent: g.count as f64 * 100.0 / reachable as f64,
            example_path: index
                .paths
                .path_to(g.example)
                .map(|p| render_path(snapshot, &p))
                .unwrap_or_default(),
        })
        .collect();
    let representative = report
        .groups
        .first()
        .and_then(|g| index.paths.path_to(g.example));
    let representative_path = representative
        .as_ref()
        .map(|p| render_path(snapshot, p))
        .unwrap_or_default();
    let mut folded: Vec<FoldedGrowth> = c
        .folded
        .iter()
        .map(|(ft, (count, bytes))| FoldedGrowth {
            type_name: type_name_of(snapshot, *ft),
            count: *count,
            bytes: *bytes,
            how: "owned",
        })
        .collect();
    folded.extend(c.moved_in.iter().cloned());
    folded.sort_by(|a, b| {
        b.bytes
            .cmp(&a.bytes)
            .then_with(|| a.type_name.cmp(&b.type_name))
    });
    let fixes = representative
        .as_ref()
        .map(|p| {
            let mut evidence = PathEvidence::from_path(snapshot, p);
            evidence.retained_types = folded
                .iter()
                .filter(|f| f.how == "owned")
                .map(|f| f.type_name.clone())
                .collect();
            suggest_fixes(&evidence)
        })
        .unwrap_or_default();
    let growth = diff.growth_of(&type_name);
    // Where no single object dominates them (the entries of an lru_cache are linked
    // through C pointers the walk cannot see as references), the container right above
    // the objects on their dominant path speaks for them.
    let near_on_path = representative
        .as_ref()
        .filter(|_| shapes.first().is_some_and(|s| s.share_percent >= 90.0))
        .map(|p| p.nodes.iter().rev().skip(1).take(2).copied().collect())
        .unwrap_or_default();
    let bound = bounded_holder(index, point.as_ref().map(|p| p.node), near_on_path);
    let still_a_problem = fixes
        .first()
        .is_some_and(|f| STILL_A_PROBLEM_WHEN_BOUNDED.contains(&f.code));
    let (bounded_by, capped) = match bound {
        Some(b) if still_a_problem => (None, Some(b)),
        other => (other, None),
    };
    let accumulation = point.map(|p| Accumulation {
        type_name: snapshot.type_name(p.node).to_owned(),
        path: p.path,
        retained_bytes: p.retained_bytes,
        dominated_targets: p.dominated_targets,
        total_targets: p.total_targets,
    });
    let mut headline = if c.count > 0 {
        format!(
            "{} new {type_name} survive ({})",
            c.count,
            crate::format_bytes_signed(c.bytes as f64)
        )
    } else {
        format!(
            "{} {type_name} grew in place ({})",
            c.grown.len(),
            crate::format_bytes_signed(c.bytes as f64)
        )
    };
    if let Some(top) = shapes.first() {
        headline.push_str(&format!(
            "; {:.0}% held by {}",
            top.share_percent.min(100.0),
            top.holder
        ));
    }
    if let Some(bound) = &bounded_by {
        headline.push_str(&format!(
            "; bounded: a {} of capacity {} holding {} entries, it stops growing when full",
            bound.type_name, bound.capacity, bound.entries
        ));
    } else if let Some(fix) = fixes.first() {
        if let Some(cap) = capped {
            headline.push_str(&format!(
                "; capped at {} entries ({} now)",
                cap.capacity, cap.entries
            ));
        }
        headline.push_str(&format!(" [{}]", fix.code));
    }
    Suspect {
        rank: rank as u32 + 1,
        type_name,
        score,
        count_share,
        bytes_share,
        count_growth: c.count,
        bytes_growth: c.bytes,
        new_survivors: c.anchors.len() as u64,
        grown_in_place: c.grown.len() as u64,
        net_count_delta: growth.map_or(0, |g| g.count_delta),
        net_bytes_delta: growth.map_or(0, |g| g.bytes_delta),
        folded,
        shapes,
        representative_path,
        accumulation_point: accumulation,
        bounded_by,
        fixes,
        headline,
    }
}
