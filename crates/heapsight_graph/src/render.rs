//! Turning a [`Path`] into readable steps such as
//! `["module app", "._CACHE", "['k']", "app.UserSession"]`.

use std::fmt;

use heapsight_snapshot::model::{LabelKind, NodeIdx, RootKind, Snapshot, StrId, NO_STR};

use crate::graph::{EdgeIdx, RootIdx};
use crate::paths::Path;

/// One readable step of a path, in structured form (for reports); its `Display` is the
/// text form used by [`render_path`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Step {
    /// Where the path starts. `name` is the module or thread name, the interpreter
    /// object's description, or for `External` roots the type of the C-held object.
    /// Displays as `module app`, `thread MainThread`, `interpreter sys`, `native ref dict`.
    Root {
        /// Why the root is alive.
        kind: RootKind,
        /// Module, thread or interpreter object name; type name for `External`.
        name: String,
    },
    /// Attribute, including a collapsed `__dict__` + key pair: `.name`.
    Attr(String),
    /// Dict value under a str key: `['key']` (quotes and control characters escaped).
    Key(String),
    /// Dict value under a non-str key, already a repr: `[42]`.
    KeyRepr(String),
    /// Sequence position: `[3]`.
    Index(u32),
    /// Frame local or closure variable: `local 'x'`.
    Local(String),
    /// Set element: `{item}`.
    SetItem,
    /// A dict key object itself: `<key>`.
    KeyObject,
    /// Unnamed reference; holds the referenced object's type: `->list`.
    Unnamed(String),
    /// Last step: the type name of the path's target: `app.UserSession`.
    Target(String),
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Root { kind, name } => {
                let prefix = match kind {
                    RootKind::Module => "module",
                    RootKind::Thread => "thread",
                    RootKind::Interpreter => "interpreter",
                    RootKind::External => "native ref",
                };
                write!(f, "{prefix} {name}")
            }
            Step::Attr(name) => write!(f, ".{name}"),
            Step::Key(key) => write!(f, "['{}']", escape_quoted(key)),
            Step::KeyRepr(repr) => write!(f, "[{repr}]"),
            Step::Index(i) => write!(f, "[{i}]"),
            Step::Local(name) => write!(f, "local '{}'", escape_quoted(name)),
            Step::SetItem => f.write_str("{item}"),
            Step::KeyObject => f.write_str("<key>"),
            Step::Unnamed(type_name) => write!(f, "->{type_name}"),
            Step::Target(type_name) => f.write_str(type_name),
        }
    }
}

/// Escapes a string for display between single quotes, the way Python's repr would.
pub fn escape_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// An edge of a path after collapsing Python's `__dict__` indirection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LogicalEdge {
    pub kind: LabelKind,
    pub value: u32,
    /// The node this logical edge arrives at.
    pub target: NodeIdx,
}

/// Walks `edges` (which leave `nodes[i]` for `nodes[i + 1]`) and merges
/// `Attr("__dict__")` into a dict followed by `Key(k)` into one `Attr(k)`: the object's
/// attribute `k` stored in its instance/module/class dict.
pub(crate) fn logical_edges(
    snapshot: &Snapshot,
    nodes: &[NodeIdx],
    edges: &[EdgeIdx],
    out: &mut Vec<LogicalEdge>,
) {
    out.clear();
    let label = |e: EdgeIdx| {
        let i = e.index();
        (
            snapshot
                .edges
                .label_kinds
                .get(i)
                .copied()
                .unwrap_or(LabelKind::None),
            snapshot.edges.label_values.get(i).copied().unwrap_or(0),
        )
    };
    let mut i = 0;
    while i < edges.len() {
        let (kind, value) = label(edges[i]);
        let Some(&target) = nodes.get(i + 1) else {
            break;
        };
        if kind == LabelKind::Attr
            && snapshot.str(StrId(value)) == Some("__dict__")
            && snapshot.type_name(target) == "dict"
        {
            if let (Some(&next), Some(&next_target)) = (edges.get(i + 1), nodes.get(i + 2)) {
                let (next_kind, next_value) = label(next);
                if next_kind == LabelKind::Key {
                    out.push(LogicalEdge {
                        kind: LabelKind::Attr,
                        value: next_value,
                        target: next_target,
                    });
                    i += 2;
                    continue;
                }
            }
        }
        out.push(LogicalEdge {
            kind,
            value,
            target,
        });
        i += 1;
    }
}

fn string_or_placeholder(snapshot: &Snapshot, id: StrId) -> String {
    snapshot.str(id).unwrap_or("?").to_owned()
}

/// The root step for `root` (see [`Step::Root`]).
pub fn root_step(snapshot: &Snapshot, root: RootIdx) -> Step {
    let (kind, name) = root_kind_name(snapshot, root);
    Step::Root { kind, name }
}

/// Kind and display name of a root: its own name, else the node's name, else the node's
/// type; always the type for `External` roots (their name says nothing readable).
pub(crate) fn root_kind_name(snapshot: &Snapshot, root: RootIdx) -> (RootKind, String) {
    let Some(r) = snapshot.roots.get(root.index()) else {
        return (RootKind::External, "?".to_owned());
    };
    let name = match r.kind {
        RootKind::External => snapshot.type_name(r.node).to_owned(),
        _ if r.name != NO_STR => string_or_placeholder(snapshot, r.name),
        _ => {
            let node_name = snapshot
                .nodes
                .name
                .get(r.node.index())
                .copied()
                .unwrap_or(NO_STR);
            if node_name != NO_STR {
                string_or_placeholder(snapshot, node_name)
            } else {
                snapshot.type_name(r.node).to_owned()
            }
        }
    };
    (r.kind, name)
}

pub(crate) fn edge_step(snapshot: &Snapshot, edge: &LogicalEdge) -> Step {
    let text = || string_or_placeholder(snapshot, StrId(edge.value));
    match edge.kind {
        LabelKind::None => Step::Unnamed(snapshot.type_name(edge.target).to_owned()),
        LabelKind::Attr => Step::Attr(text()),
        LabelKind::Key => Step::Key(text()),
        LabelKind::KeyRepr => Step::KeyRepr(text()),
        LabelKind::KeyObject => Step::KeyObject,
        LabelKind::Index => Step::Index(edge.value),
        LabelKind::Local => Step::Local(text()),
        LabelKind::SetItem => Step::SetItem,
    }
}

/// The step one raw edge reads as on its own (no `__dict__` collapsing): the label of an
/// arrow in a reference graph.
pub fn single_edge_step(snapshot: &Snapshot, edge: EdgeIdx) -> Step {
    let i = edge.index();
    let logical = LogicalEdge {
        kind: snapshot
            .edges
            .label_kinds
            .get(i)
            .copied()
            .unwrap_or(LabelKind::None),
        value: snapshot.edges.label_values.get(i).copied().unwrap_or(0),
        target: snapshot.edges.targets.get(i).copied().unwrap_or(NodeIdx(0)),
    };
    edge_step(snapshot, &logical)
}

/// Structured steps of `path`: the root, one step per (collapsed) edge, then the
/// target's type.
pub fn path_steps(snapshot: &Snapshot, path: &Path) -> Vec<Step> {
    let mut logical = Vec::with_capacity(path.edges.len());
    logical_edges(snapshot, &path.nodes, &path.edges, &mut logical);
    let mut steps = Vec::with_capacity(logical.len() + 2);
    steps.push(root_step(snapshot, path.root));
    steps.extend(logical.iter().map(|e| edge_step(snapshot, e)));
    if let Some(target) = path.target() {
        steps.push(Step::Target(snapshot.type_name(target).to_owned()));
    }
    steps
}

/// Readable steps of `path`, e.g. `["module app", "._CACHE", "['k']", "app.UserSession"]`.
///
/// An `Attr("__dict__")` edge into a dict followed by a `Key("x")` edge reads as the
/// single step `.x`.
pub fn render_path(snapshot: &Snapshot, path: &Path) -> Vec<String> {
    path_steps(snapshot, path)
        .iter()
        .map(Step::to_string)
        .collect()
}
