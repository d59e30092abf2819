//! Retainer shapes (how a set of objects is held, with keys and indices abstracted) and
//! the accumulation point (the node dominating most of a set).

use std::fmt;

use heapsight_snapshot::model::{LabelKind, NodeIdx, RootKind, Snapshot, StrId, NO_STR};

use crate::dominators::DominatorTree;
use crate::graph::{EdgeIdx, Graph, RootIdx};
use crate::hash::FastMap;
use crate::paths::PathTree;
use crate::render::{path_steps, Step};

/// One step of a retainer shape: like [`Step`] but with dict keys, indices and set
/// elements abstracted to `[*]`; attributes keep their names.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ShapeStep {
    /// The root, as in [`Step::Root`].
    Root {
        /// Why the root is alive.
        kind: RootKind,
        /// As in [`Step::Root`].
        name: String,
    },
    /// `.name` (a collapsed `__dict__` entry included).
    Attr(String),
    /// `[*]`: any key, repr key, index or set element.
    Any,
    /// `local 'x'`.
    Local(String),
    /// `<key>`.
    KeyObject,
    /// `->type` for unnamed references.
    Unnamed(String),
}

impl fmt::Display for ShapeStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShapeStep::Root { kind, name } => Step::Root {
                kind: *kind,
                name: name.clone(),
            }
            .fmt(f),
            ShapeStep::Attr(name) => Step::Attr(name.clone()).fmt(f),
            ShapeStep::Any => f.write_str("[*]"),
            ShapeStep::Local(name) => Step::Local(name.clone()).fmt(f),
            ShapeStep::KeyObject => Step::KeyObject.fmt(f),
            ShapeStep::Unnamed(type_name) => Step::Unnamed(type_name.clone()).fmt(f),
        }
    }
}

/// A group of targets whose shortest paths share one shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetainerShape {
    /// The root and abstracted steps: first a [`ShapeStep::Root`].
    pub steps: Vec<ShapeStep>,
    /// `module app: ._SESSIONS[*]`: the root, a colon, then the steps.
    pub holder: String,
    /// Type name of the targets in this group (`app.UserSession`).
    pub target_type: String,
    /// Number of targets with this shape.
    pub count: u64,
    /// Sum of their shallow sizes.
    pub bytes: u64,
    /// One target with this shape (the first given), for drill-down.
    pub example: NodeIdx,
}

impl RetainerShape {
    /// `module app: ._SESSIONS[*] -> app.UserSession`.
    pub fn text(&self) -> String {
        format!("{} -> {}", self.holder, self.target_type)
    }
}

/// Retainer shapes of a target set, most common first.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ShapeReport {
    /// Groups sorted by count, then bytes, descending (then by text).
    pub groups: Vec<RetainerShape>,
    /// Number of targets given.
    pub total_count: u64,
    /// Sum of the targets' shallow sizes.
    pub total_bytes: u64,
    /// Targets no root reaches (not in any group).
    pub unreachable_count: u64,
    /// Their shallow sizes.
    pub unreachable_bytes: u64,
    /// Groups left out by a limit ([`ShapeIndex::top_shapes`]).
    pub omitted_groups: u64,
    /// Targets in the omitted groups.
    pub omitted_count: u64,
    /// Their shallow sizes.
    pub omitted_bytes: u64,
}

impl ShapeReport {
    /// `97% of new UserSession are held by module app: ._SESSIONS[*]`, for the most
    /// common shape; `None` when no target is reachable. `what` names the set.
    pub fn headline(&self, what: &str) -> Option<String> {
        let top = self.groups.first()?;
        Some(format!(
            "{} of {what} are held by {}",
            percent(top.count, self.total_count),
            top.holder
        ))
    }
}

/// `part / whole` as a whole percentage, never rounding a non-zero part to 0% or a
/// partial share to 100%.
pub fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "0%".to_owned();
    }
    let p = (part as f64) * 100.0 / (whole as f64);
    if part > 0 && p < 1.0 {
        "<1%".to_owned()
    } else if part < whole && p > 99.0 {
        ">99%".to_owned()
    } else {
        format!("{p:.0}%")
    }
}

// Shape atoms: one u64 per step, tag in the high bits, string/type id in the low 32
// (root atoms also carry the root kind in bits 32..40).
const TAG_SHIFT: u32 = 40;
const TAG_ROOT_NAMED: u64 = 1;
const TAG_ROOT_TYPED: u64 = 2;
const TAG_ATTR: u64 = 3;
const TAG_ANY: u64 = 4;
const TAG_LOCAL: u64 = 5;
const TAG_KEY_OBJECT: u64 = 6;
const TAG_UNNAMED: u64 = 7;
/// `Attr("__dict__")` into a dict: shown as `.__dict__` unless the next step is a str
/// key, which then replaces it with `.key`.
const TAG_DICT_ATTR: u64 = 8;

fn atom(tag: u64, value: u32) -> u64 {
    (tag << TAG_SHIFT) | u64::from(value)
}

fn atom_tag(atom: u64) -> u64 {
    atom >> TAG_SHIFT
}

fn atom_value(atom: u64) -> u32 {
    atom as u32
}

fn root_atom(snapshot: &Snapshot, root: RootIdx) -> u64 {
    let Some(r) = snapshot.roots.get(root.index()) else {
        return atom(TAG_ROOT_TYPED, u32::MAX);
    };
    let kind_bits = (r.kind as u64) << 32;
    let type_of_node = || {
        snapshot
            .nodes
            .type_idx
            .get(r.node.index())
            .map_or(u32::MAX, |t| t.0)
    };
    // Mirrors `root_kind_name`: External roots are grouped by type, others by name.
    let node_name = snapshot
        .nodes
        .name
        .get(r.node.index())
        .copied()
        .unwrap_or(NO_STR);
    let (tag, value) = match r.kind {
        RootKind::External => (TAG_ROOT_TYPED, type_of_node()),
        _ if r.name != NO_STR => (TAG_ROOT_NAMED, r.name.0),
        _ if node_name != NO_STR => (TAG_ROOT_NAMED, node_name.0),
        _ => (TAG_ROOT_TYPED, type_of_node()),
    };
    atom(tag, value) | kind_bits
}

fn type_name_of(snapshot: &Snapshot, type_idx: u32) -> String {
    snapshot
        .types
        .name
        .get(type_idx as usize)
        .and_then(|s| snapshot.str(*s))
        .unwrap_or("?")
        .to_owned()
}

fn decode_atom(snapshot: &Snapshot, a: u64) -> ShapeStep {
    let value = atom_value(a);
    let text = || snapshot.str(StrId(value)).unwrap_or("?").to_owned();
    match atom_tag(a) {
        TAG_ROOT_NAMED | TAG_ROOT_TYPED => {
            let kind = RootKind::from_u8((a >> 32) as u8).unwrap_or(RootKind::External);
            let name = if atom_tag(a) == TAG_ROOT_NAMED {
                text()
            } else {
                type_name_of(snapshot, value)
            };
            ShapeStep::Root { kind, name }
        }
        TAG_ATTR | TAG_DICT_ATTR => ShapeStep::Attr(text()),
        TAG_ANY => ShapeStep::Any,
        TAG_LOCAL => ShapeStep::Local(text()),
        TAG_KEY_OBJECT => ShapeStep::KeyObject,
        _ => ShapeStep::Unnamed(type_name_of(snapshot, value)),
    }
}

fn holder_text(steps: &[ShapeStep]) -> String {
    let mut out = String::new();
    for (i, step) in steps.iter().enumerate() {
        match i {
            0 => out.push_str(&step.to_string()),
            1 => {
                out.push_str(": ");
                out.push_str(&step.to_string());
            }
            _ => {
                if matches!(step, ShapeStep::Local(_)) {
                    out.push(' ');
                }
                out.push_str(&step.to_string());
            }
        }
    }
    out
}

/// Shape groups are keyed by (trie entry, target type index).
type GroupKey = (u32, u32);

/// Members of one shape group so far.
struct Tally {
    count: u64,
    bytes: u64,
    /// The first member met.
    example: NodeIdx,
}

/// Per-node memo value: shape not computed yet.
const MEMO_UNKNOWN: u32 = 0;
/// Per-node memo value: no root reaches the node.
const MEMO_UNREACHED: u32 = u32::MAX;
/// Parent of a trie entry that starts a shape (a root atom).
const TRIE_TOP: u32 = u32::MAX;

/// Shapes of nodes' shortest paths, memoized: a node's shape is its path parent's
/// shape plus one atom, so the shapes form a trie and each node costs one step however
/// long its path. Reuse one index for many target sets (e.g. the top types of a heap).
///
/// Memory: 4 bytes per node (allocated zeroed, so pages never asked for stay free)
/// plus about 30 bytes per distinct shape prefix (trie entry, lookup slot, group slot);
/// none of it when the path tree brought its shapes along (then only the group slots).
pub struct ShapeIndex<'a> {
    snapshot: &'a Snapshot,
    paths: &'a PathTree,
    m: Memo<'a>,
    walk: Vec<(NodeIdx, EdgeIdx)>,
    /// Per trie entry: first group of `top_shapes`' current call with that shape, or
    /// [`NO_GROUP`]; reset after each call.
    group_of_entry: Vec<u32>,
}

/// The memo a [`ShapeIndex`] works with: its own, or the complete one of a path tree
/// (read only: every reached node already has its shape).
enum Memo<'a> {
    Own(ShapeMemo),
    Shared(&'a ShapeMemo),
}

impl Memo<'_> {
    fn get(&self) -> &ShapeMemo {
        match self {
            Memo::Own(m) => m,
            Memo::Shared(m) => m,
        }
    }
}

/// The shape of every node reached so far, as entries of a trie of shape prefixes.
/// Filled on demand by [`ShapeIndex`], or for every node at once by
/// [`shortest_paths_and_shapes`] during its breadth-first search.
#[derive(Clone)]
pub struct ShapeMemo {
    /// Every node the search reached has its shape: a node left at [`MEMO_UNKNOWN`]
    /// is unreached, and nothing needs to be computed (or written) later.
    complete: bool,
    /// Per node: trie entry + 1, [`MEMO_UNKNOWN`] or [`MEMO_UNREACHED`].
    memo: Vec<u32>,
    /// Trie entries: (parent entry or [`TRIE_TOP`], atom id).
    trie: Vec<(u32, u32)>,
    /// Atom id -> atom. A heap has few distinct atoms (names, types, roots), so
    /// numbering them keeps trie keys at 8 bytes.
    atoms: Vec<u64>,
    atom_ids: FastMap<u64, u32>,
    /// The last atom looked up and its id: siblings (list items, dict values) repeat it.
    last_atom: (u64, u32),
    /// (parent entry, atom id) -> trie entry.
    lookup: EntryTable,
    /// The last (parent entry, atom id) interned and its entry: siblings come in a row.
    last_intern: (u32, u32, u32),
    /// The last attribute name checked against `__dict__`, and the answer.
    last_attr: (u32, bool),
}

/// No group yet for a trie entry.
const NO_GROUP: u32 = u32::MAX;

/// Open-addressing hash table from (parent entry, atom id) to trie entry. One probe is
/// usually one cache miss: the whole key sits in the slot (hashbrown would read a
/// control byte and a bucket elsewhere), and a slot is 12 bytes instead of 25. Millions
/// of lookups on a big heap make this the cost of computing shapes.
#[derive(Clone)]
struct EntryTable {
    /// Slots `[parent, atom id, entry]`; `entry == EMPTY_SLOT` marks a free slot.
    slots: Vec<[u32; 3]>,
    len: usize,
}

const EMPTY_SLOT: u32 = u32::MAX;

impl EntryTable {
    fn new() -> Self {
        EntryTable {
            slots: vec![[0, 0, EMPTY_SLOT]; 1024],
            len: 0,
        }
    }

    fn slot_of(&self, parent: u32, atom_id: u32) -> usize {
        let key = (u64::from(parent) << 32) | u64::from(atom_id);
        let mask = self.slots.len() - 1;
        // Fibonacci hashing: the high bits of the product mix every key bit.
        let bits = self.slots.len().trailing_zeros();
        let mut i = (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - bits)) as usize;
        loop {
            let slot = &self.slots[i];
            if slot[2] == EMPTY_SLOT || (slot[0] == parent && slot[1] == atom_id) {
                return i;
            }
            i = (i + 1) & mask;
        }
    }

    /// The entry stored for the key, or `make()`'s, stored now.
    fn get_or_insert(&mut self, parent: u32, atom_id: u32, make: impl FnOnce() -> u32) -> u32 {
        let i = self.slot_of(parent, atom_id);
        if self.slots[i][2] != EMPTY_SLOT {
            return self.slots[i][2];
        }
        let entry = make();
        self.slots[i] = [parent, atom_id, entry];
        self.len += 1;
        // Load factor at most 3/4 keeps linear probing short.
        if self.len * 4 > self.slots.len() * 3 {
            let grown = vec![[0, 0, EMPTY_SLOT]; self.slots.len() * 2];
            let old = std::mem::replace(&mut self.slots, grown);
            for slot in old {
                if slot[2] != EMPTY_SLOT {
                    let j = self.slot_of(slot[0], slot[1]);
                    self.slots[j] = slot;
                }
            }
        }
        entry
    }
}

/// One shape group of a `top_shapes` call.
struct Group {
    entry: u32,
    type_idx: u32,
    tally: Tally,
    /// Next group with the same trie entry (another target type), or [`NO_GROUP`].
    next: u32,
}

impl ShapeMemo {
    /// An empty memo for `n` nodes.
    fn new(n: usize) -> Self {
        ShapeMemo {
            complete: false,
            memo: vec![MEMO_UNKNOWN; n],
            trie: Vec::new(),
            atoms: Vec::new(),
            atom_ids: FastMap::default(),
            last_atom: (u64::MAX, 0),
            lookup: EntryTable::new(),
            last_intern: (u32::MAX, u32::MAX, 0),
            last_attr: (u32::MAX, false),
        }
    }

    fn atom_id(&mut self, a: u64) -> u32 {
        if self.last_atom.0 == a {
            return self.last_atom.1;
        }
        let next = self.atoms.len() as u32;
        let id = *self.atom_ids.entry(a).or_insert(next);
        if id == next {
            self.atoms.push(a);
        }
        self.last_atom = (a, id);
        id
    }

    fn intern(&mut self, parent: u32, a: u64) -> u32 {
        let atom_id = self.atom_id(a);
        if (self.last_intern.0, self.last_intern.1) == (parent, atom_id) {
            return self.last_intern.2;
        }
        let trie = &mut self.trie;
        let entry = self.lookup.get_or_insert(parent, atom_id, || {
            trie.push((parent, atom_id));
            (trie.len() - 1) as u32
        });
        self.last_intern = (parent, atom_id, entry);
        entry
    }

    /// The trie entry of a path that starts at `root`.
    fn root_entry(&mut self, snapshot: &Snapshot, root: RootIdx) -> u32 {
        let a = root_atom(snapshot, root);
        self.intern(TRIE_TOP, a)
    }

    fn is_dunder_dict(&mut self, snapshot: &Snapshot, value: u32) -> bool {
        if self.last_attr.0 != value {
            self.last_attr = (value, snapshot.str(StrId(value)) == Some("__dict__"));
        }
        self.last_attr.1
    }

    /// The trie entry of the shape arriving at `target` from `parent_entry` over `edge`.
    fn extend(
        &mut self,
        snapshot: &Snapshot,
        parent_entry: u32,
        edge: EdgeIdx,
        target: NodeIdx,
    ) -> u32 {
        let i = edge.index();
        let kind = snapshot
            .edges
            .label_kinds
            .get(i)
            .copied()
            .unwrap_or(LabelKind::None);
        let value = snapshot.edges.label_values.get(i).copied().unwrap_or(0);
        let a = match kind {
            LabelKind::Attr
                if self.is_dunder_dict(snapshot, value) && snapshot.type_name(target) == "dict" =>
            {
                atom(TAG_DICT_ATTR, value)
            }
            LabelKind::Key => {
                let (grandparent, parent_atom) = self.trie[parent_entry as usize];
                if atom_tag(self.atoms[parent_atom as usize]) == TAG_DICT_ATTR {
                    return self.intern(grandparent, atom(TAG_ATTR, value));
                }
                atom(TAG_ANY, 0)
            }
            LabelKind::Attr => atom(TAG_ATTR, value),
            LabelKind::KeyRepr | LabelKind::Index | LabelKind::SetItem => atom(TAG_ANY, 0),
            LabelKind::Local => atom(TAG_LOCAL, value),
            LabelKind::KeyObject => atom(TAG_KEY_OBJECT, 0),
            LabelKind::None => atom(
                TAG_UNNAMED,
                snapshot
                    .nodes
                    .type_idx
                    .get(target.index())
                    .map_or(u32::MAX, |t| t.0),
            ),
        };
        self.intern(parent_entry, a)
    }
}

/// [`shortest_paths_from_roots`](crate::paths::shortest_paths_from_roots) plus the
/// retainer shape of every node it reaches, computed in the same breadth-first search:
/// when a node is first reached, its parent's shape and the edge's label are at hand,
/// so a shape costs one lookup instead of a later walk through random memory. Give
/// the memo to [`ShapeIndex::with_memo`]. Costs 4 bytes per node more than the paths
/// alone, plus the trie.
pub fn shortest_paths_and_shapes(graph: &Graph) -> (PathTree, ShapeMemo) {
    let snapshot = graph.snapshot();
    let mut m = ShapeMemo::new(graph.n_nodes());
    let paths = crate::paths::bfs_from_roots(graph, |node, from| {
        let entry = match from {
            crate::paths::Reached::Root(root) => m.root_entry(snapshot, root),
            crate::paths::Reached::Edge(parent_entry, edge) => {
                m.extend(snapshot, parent_entry, EdgeIdx(edge), NodeIdx(node))
            }
        };
        m.memo[node as usize] = entry + 1;
        entry
    });
    m.complete = true;
    (paths, m)
}

impl<'a> ShapeIndex<'a> {
    /// An index over `paths`: it reads the shapes `paths` came with (a tree from
    /// [`GraphIndex`](crate::GraphIndex)), or else computes shapes on demand.
    pub fn new(snapshot: &'a Snapshot, paths: &'a PathTree) -> Self {
        let m = match &paths.shapes {
            Some(shared) => Memo::Shared(shared),
            None => Memo::Own(ShapeMemo::new(paths.n_nodes())),
        };
        ShapeIndex::with(snapshot, paths, m)
    }

    /// An index over `paths` starting from shapes already computed for them, by
    /// [`shortest_paths_and_shapes`] (which returned both).
    pub fn with_memo(snapshot: &'a Snapshot, paths: &'a PathTree, memo: ShapeMemo) -> Self {
        ShapeIndex::with(snapshot, paths, Memo::Own(memo))
    }

    fn with(snapshot: &'a Snapshot, paths: &'a PathTree, m: Memo<'a>) -> Self {
        ShapeIndex {
            snapshot,
            paths,
            m,
            walk: Vec::new(),
            group_of_entry: Vec::new(),
        }
    }

    /// The trie entry of `node`'s shape; `None` if no root reaches it.
    fn entry_of(&mut self, node: NodeIdx) -> Option<u32> {
        let shared = self.m.get();
        let memo = *shared.memo.get(node.index())?;
        if shared.complete {
            return (memo != MEMO_UNKNOWN && memo != MEMO_UNREACHED).then(|| memo - 1);
        }
        // Only complete memos are shared; should one ever be incomplete, filling it
        // needs a copy of our own.
        if let Memo::Shared(shared) = self.m {
            self.m = Memo::Own(shared.clone());
        }
        let Memo::Own(m) = &mut self.m else {
            return None;
        };
        entry_on_demand(self.snapshot, self.paths, m, &mut self.walk, node, memo)
    }

    fn steps_of_entry(&self, entry: u32) -> Vec<ShapeStep> {
        let mut atoms = Vec::new();
        let mut cur = entry;
        let m = self.m.get();
        while let Some(&(parent, a)) = m.trie.get(cur as usize) {
            atoms.push(m.atoms[a as usize]);
            cur = parent;
        }
        atoms
            .iter()
            .rev()
            .map(|&a| decode_atom(self.snapshot, a))
            .collect()
    }

    /// The abstracted steps of `node`'s shortest path (root first, target type not
    /// included); `None` if no root reaches it.
    pub fn steps_of(&mut self, node: NodeIdx) -> Option<Vec<ShapeStep>> {
        let entry = self.entry_of(node)?;
        Some(self.steps_of_entry(entry))
    }

    /// `module app: ._SESSIONS[*]` for `node`; `None` if no root reaches it.
    pub fn holder_of(&mut self, node: NodeIdx) -> Option<String> {
        self.steps_of(node).map(|steps| holder_text(&steps))
    }

    /// Groups `targets` by shape and type (see [`retainer_shapes`]).
    pub fn shapes(&mut self, targets: &[NodeIdx]) -> ShapeReport {
        self.top_shapes(targets, usize::MAX)
    }

    /// Like [`ShapeIndex::shapes`] but renders only the `limit` most common groups
    /// (by count, then bytes); the rest are summed in the report's `omitted_*` fields.
    /// Rendering dominates when a heap has many distinct shapes.
    pub fn top_shapes(&mut self, targets: &[NodeIdx], limit: usize) -> ShapeReport {
        let snapshot = self.snapshot;
        let mut report = ShapeReport::default();
        let mut groups: Vec<Group> = Vec::new();
        // The last (entry, type) met and its group: siblings are usually adjacent.
        let mut last_group: (u32, u32, u32) = (u32::MAX, u32::MAX, NO_GROUP);
        for &t in targets {
            let size = snapshot.nodes.size.get(t.index()).copied().unwrap_or(0);
            report.total_count += 1;
            report.total_bytes += size;
            let Some(entry) = self.entry_of(t) else {
                report.unreachable_count += 1;
                report.unreachable_bytes += size;
                continue;
            };
            let type_idx = snapshot
                .nodes
                .type_idx
                .get(t.index())
                .map_or(u32::MAX, |ty| ty.0);
            if (last_group.0, last_group.1) == (entry, type_idx) {
                let tally = &mut groups[last_group.2 as usize].tally;
                tally.count += 1;
                tally.bytes += size;
                continue;
            }
            if self.group_of_entry.len() <= entry as usize {
                self.group_of_entry
                    .resize(self.m.get().trie.len(), NO_GROUP);
            }
            let first = self.group_of_entry[entry as usize];
            let mut g = first;
            while g != NO_GROUP && groups[g as usize].type_idx != type_idx {
                g = groups[g as usize].next;
            }
            if g == NO_GROUP {
                g = groups.len() as u32;
                groups.push(Group {
                    entry,
                    type_idx,
                    tally: Tally {
                        count: 0,
                        bytes: 0,
                        example: t,
                    },
                    next: first,
                });
                self.group_of_entry[entry as usize] = g;
            }
            last_group = (entry, type_idx, g);
            let tally = &mut groups[g as usize].tally;
            tally.count += 1;
            tally.bytes += size;
        }
        for g in &groups {
            self.group_of_entry[g.entry as usize] = NO_GROUP;
        }
        let mut ranked: Vec<(GroupKey, Tally)> = groups
            .into_iter()
            .map(|g| ((g.entry, g.type_idx), g.tally))
            .collect();
        // The first member breaks ties: it depends only on the targets' order.
        let rank = |g: &(GroupKey, Tally)| {
            (
                std::cmp::Reverse(g.1.count),
                std::cmp::Reverse(g.1.bytes),
                g.1.example,
            )
        };
        if ranked.len() > limit {
            ranked.select_nth_unstable_by_key(limit, rank);
            for (_, tally) in ranked.drain(limit..) {
                report.omitted_groups += 1;
                report.omitted_count += tally.count;
                report.omitted_bytes += tally.bytes;
            }
        }
        report.groups = ranked
            .into_iter()
            .map(|((entry, type_idx), tally)| {
                let steps = self.steps_of_entry(entry);
                RetainerShape {
                    holder: holder_text(&steps),
                    steps,
                    target_type: type_name_of(snapshot, type_idx),
                    count: tally.count,
                    bytes: tally.bytes,
                    example: tally.example,
                }
            })
            .collect();
        report.groups.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then(b.bytes.cmp(&a.bytes))
                .then_with(|| a.holder.cmp(&b.holder))
                .then_with(|| a.target_type.cmp(&b.target_type))
                .then(a.example.cmp(&b.example))
        });
        report
    }
}

/// [`ShapeIndex::entry_of`] for a memo still being filled: climbs `node`'s path to the
/// first node with a known shape, then fills in the shapes on the way back down.
fn entry_on_demand(
    snapshot: &Snapshot,
    paths: &PathTree,
    m: &mut ShapeMemo,
    walk: &mut Vec<(NodeIdx, EdgeIdx)>,
    node: NodeIdx,
    mut memo: u32,
) -> Option<u32> {
    walk.clear();
    let mut cur = node;
    // Climb to the first node whose shape is known (or to the path's root).
    while memo == MEMO_UNKNOWN {
        match paths.parent(cur) {
            Some((up, edge)) => {
                walk.push((cur, edge));
                cur = up;
                memo = m.memo[cur.index()];
            }
            None => {
                memo = match paths.root_of_path(cur) {
                    Some(root) => m.root_entry(snapshot, root) + 1,
                    None => MEMO_UNREACHED,
                };
                m.memo[cur.index()] = memo;
            }
        }
    }
    while let Some((down, edge)) = walk.pop() {
        if memo != MEMO_UNREACHED {
            memo = m.extend(snapshot, memo - 1, edge, down) + 1;
        }
        m.memo[down.index()] = memo;
    }
    (memo != MEMO_UNREACHED).then(|| memo - 1)
}

/// Groups `targets` by the shape of their shortest path from a root (see
/// [`ShapeStep`]) and their type. Each entry of `targets` counts once, so pass distinct
/// nodes. For several target sets over one heap, reuse a [`ShapeIndex`].
pub fn retainer_shapes(snapshot: &Snapshot, paths: &PathTree, targets: &[NodeIdx]) -> ShapeReport {
    ShapeIndex::new(snapshot, paths).shapes(targets)
}

/// The node where a target set accumulates: the deepest node dominating the most
/// targets (see [`DominatorTree::most_dominating`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccumulationPoint {
    /// The accumulating node (a dict, list, module... holding the targets).
    pub node: NodeIdx,
    /// Targets it dominates (a target does not count for itself).
    pub dominated_targets: u64,
    /// Targets given.
    pub total_targets: u64,
    /// The node's retained size in bytes.
    pub retained_bytes: u64,
    /// Structured shortest path from a root to the node (empty if no root reaches it).
    pub steps: Vec<Step>,
    /// The same, rendered: `["module app", "._SESSIONS", "dict"]`.
    pub path: Vec<String>,
}

/// Finds the accumulation point of `targets`; `None` when no node but the super-root
/// dominates any of them.
pub fn accumulation_point(
    snapshot: &Snapshot,
    dominators: &DominatorTree,
    paths: &PathTree,
    targets: &[NodeIdx],
) -> Option<AccumulationPoint> {
    let (node, dominated_targets) = dominators.most_dominating(targets)?;
    let steps = paths
        .path_to(node)
        .map(|p| path_steps(snapshot, &p))
        .unwrap_or_default();
    Some(AccumulationPoint {
        node,
        dominated_targets,
        total_targets: targets.len() as u64,
        retained_bytes: dominators.retained_size(node),
        path: steps.iter().map(Step::to_string).collect(),
        steps,
    })
}
