//! Retainer shapes (how a set of objects is held, with keys and indices abstracted) and
//! the accumulation point (the node dominating most of a set).

use std::collections::HashMap;
use std::fmt;

use heapsight_snapshot::model::{LabelKind, NodeIdx, RootKind, Snapshot, StrId, NO_STR};

use crate::dominators::DominatorTree;
use crate::graph::RootIdx;
use crate::paths::{Path, PathTree};
use crate::render::{logical_edges, path_steps, root_kind_name, LogicalEdge, Step};

/// One step of a retainer shape: like [`Step`] but with dict keys, indices and set
/// elements abstracted to `[*]`; attributes keep their names.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ShapeStep {
    /// The root, as in [`Step::Root`].
    Root { kind: RootKind, name: String },
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

// Grouping keys: one u64 per step, tag in the high bits, string/type id in the low 32.
const TAG_SHIFT: u32 = 40;
const TAG_ROOT_NAMED: u64 = 1;
const TAG_ROOT_TYPED: u64 = 2;
const TAG_ATTR: u64 = 3;
const TAG_ANY: u64 = 4;
const TAG_LOCAL: u64 = 5;
const TAG_KEY_OBJECT: u64 = 6;
const TAG_UNNAMED: u64 = 7;
const TAG_TARGET: u64 = 8;

fn atom(tag: u64, value: u32) -> u64 {
    (tag << TAG_SHIFT) | u64::from(value)
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
    // Mirrors `root_step`: External roots are grouped by type, others by name.
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

fn type_atom(snapshot: &Snapshot, tag: u64, node: NodeIdx) -> u64 {
    atom(
        tag,
        snapshot
            .nodes
            .type_idx
            .get(node.index())
            .map_or(u32::MAX, |t| t.0),
    )
}

fn edge_atom(snapshot: &Snapshot, edge: &LogicalEdge) -> u64 {
    match edge.kind {
        LabelKind::Attr => atom(TAG_ATTR, edge.value),
        LabelKind::Key | LabelKind::KeyRepr | LabelKind::Index | LabelKind::SetItem => {
            atom(TAG_ANY, 0)
        }
        LabelKind::Local => atom(TAG_LOCAL, edge.value),
        LabelKind::KeyObject => atom(TAG_KEY_OBJECT, 0),
        LabelKind::None => type_atom(snapshot, TAG_UNNAMED, edge.target),
    }
}

fn shape_step(snapshot: &Snapshot, edge: &LogicalEdge) -> ShapeStep {
    let text = || snapshot.str(StrId(edge.value)).unwrap_or("?").to_owned();
    match edge.kind {
        LabelKind::Attr => ShapeStep::Attr(text()),
        LabelKind::Key | LabelKind::KeyRepr | LabelKind::Index | LabelKind::SetItem => {
            ShapeStep::Any
        }
        LabelKind::Local => ShapeStep::Local(text()),
        LabelKind::KeyObject => ShapeStep::KeyObject,
        LabelKind::None => ShapeStep::Unnamed(snapshot.type_name(edge.target).to_owned()),
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

struct Group {
    count: u64,
    bytes: u64,
    example: NodeIdx,
}

/// Groups `targets` by the shape of their shortest path from a root (see [`ShapeStep`]).
/// Each entry of `targets` counts once, so pass distinct nodes.
pub fn retainer_shapes(snapshot: &Snapshot, paths: &PathTree, targets: &[NodeIdx]) -> ShapeReport {
    let mut report = ShapeReport::default();
    let mut index: HashMap<Box<[u64]>, usize> = HashMap::new();
    let mut groups: Vec<Group> = Vec::new();
    let mut path = Path::default();
    let mut logical = Vec::new();
    let mut key: Vec<u64> = Vec::new();
    for &t in targets {
        let size = snapshot.nodes.size.get(t.index()).copied().unwrap_or(0);
        report.total_count += 1;
        report.total_bytes += size;
        if !paths.path_into(t, &mut path) {
            report.unreachable_count += 1;
            report.unreachable_bytes += size;
            continue;
        }
        logical_edges(snapshot, &path.nodes, &path.edges, &mut logical);
        key.clear();
        key.push(root_atom(snapshot, path.root));
        key.extend(logical.iter().map(|e| edge_atom(snapshot, e)));
        key.push(type_atom(snapshot, TAG_TARGET, t));
        let slot = match index.get(key.as_slice()) {
            Some(&slot) => slot,
            None => {
                index.insert(key.clone().into_boxed_slice(), groups.len());
                groups.push(Group {
                    count: 0,
                    bytes: 0,
                    example: t,
                });
                groups.len() - 1
            }
        };
        groups[slot].count += 1;
        groups[slot].bytes += size;
    }
    for g in groups {
        // The example was reachable when grouped, so its path exists.
        if !paths.path_into(g.example, &mut path) {
            continue;
        }
        logical_edges(snapshot, &path.nodes, &path.edges, &mut logical);
        let (kind, name) = root_kind_name(snapshot, path.root);
        let mut steps = vec![ShapeStep::Root { kind, name }];
        steps.extend(logical.iter().map(|e| shape_step(snapshot, e)));
        report.groups.push(RetainerShape {
            holder: holder_text(&steps),
            steps,
            target_type: snapshot.type_name(g.example).to_owned(),
            count: g.count,
            bytes: g.bytes,
            example: g.example,
        });
    }
    report.groups.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then(b.bytes.cmp(&a.bytes))
            .then_with(|| a.holder.cmp(&b.holder))
            .then_with(|| a.target_type.cmp(&b.target_type))
    });
    report
}

/// The node where a target set accumulates: the deepest node dominating the most
/// targets (see [`DominatorTree::most_dominating`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccumulationPoint {
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
