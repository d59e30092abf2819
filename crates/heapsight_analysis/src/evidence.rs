//! A retention path in a form rules can match: every node with its type, name and
//! kind, every edge with its label, from the root to the leaked object.

use heapsight_graph::Path;
use heapsight_snapshot::model::{
    node_flags, LabelKind, NodeIdx, Root, RootKind, Snapshot, StrId, NO_STR,
};
use serde::Serialize;

/// One object on a retention path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EvidenceNode {
    /// `module.QualName` of the object's type (`dict`, `functools._lru_cache_wrapper`).
    pub type_name: String,
    /// Module `__name__`, class `__qualname__`, ... when the object has one.
    pub name: Option<String>,
    /// The object is a module.
    pub is_module: bool,
    /// The object is a class.
    pub is_type: bool,
}

/// One reference on a retention path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeKind {
    /// A reference `tp_traverse` reported without a name.
    Unnamed,
    /// `.name`: an attribute.
    Attr,
    /// `['key']`: a dict value under a str key.
    Key,
    /// `[repr]`: a dict value under another key.
    KeyRepr,
    /// A dict's reference to one of its keys.
    KeyObject,
    /// `[i]`: a sequence position.
    Index,
    /// A frame local or closure variable.
    Local,
    /// A set element.
    SetItem,
}

impl From<LabelKind> for EdgeKind {
    fn from(kind: LabelKind) -> Self {
        match kind {
            LabelKind::None => EdgeKind::Unnamed,
            LabelKind::Attr => EdgeKind::Attr,
            LabelKind::Key => EdgeKind::Key,
            LabelKind::KeyRepr => EdgeKind::KeyRepr,
            LabelKind::KeyObject => EdgeKind::KeyObject,
            LabelKind::Index => EdgeKind::Index,
            LabelKind::Local => EdgeKind::Local,
            LabelKind::SetItem => EdgeKind::SetItem,
        }
    }
}

/// A labelled reference: kind plus the name for attributes, keys and locals.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EvidenceEdge {
    /// How the reference is named.
    pub kind: EdgeKind,
    /// The attribute, key or local name, or the index as text; `None` otherwise.
    pub text: Option<String>,
}

/// Who owns a container found on a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OwnerKind {
    /// A module global.
    Module,
    /// A class attribute (shared by every instance, lives as long as the class).
    Class,
    /// An attribute of some other object.
    Instance,
}

/// A retention path: `nodes[0]` is the root's object, `edges[i]` leads from `nodes[i]`
/// to `nodes[i + 1]`, the last node is the retained object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PathEvidence {
    #[serde(serialize_with = "serialize_root_kind")]
    /// Kind of the root the path starts from.
    pub root_kind: RootKind,
    /// Module or thread name of the root, or the root object's name.
    pub root_name: String,
    /// Objects from the root's object to the retained one.
    pub nodes: Vec<EvidenceNode>,
    /// References between consecutive `nodes`.
    pub edges: Vec<EvidenceEdge>,
    /// Types of objects the retained object owns (dominates), when known: a leak suspect
    /// fills it with the types folded into it (an exception's `traceback` and `frame`s).
    pub retained_types: Vec<String>,
}

pub(crate) fn serialize_root_kind<S: serde::Serializer>(
    kind: &RootKind,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(root_kind_name(*kind))
}

/// Lowercase name of a root kind, as used in reports.
pub fn root_kind_name(kind: RootKind) -> &'static str {
    match kind {
        RootKind::Module => "module",
        RootKind::Thread => "thread",
        RootKind::External => "external",
        RootKind::Interpreter => "interpreter",
    }
}

fn opt_str(snapshot: &Snapshot, id: StrId) -> Option<String> {
    if id == NO_STR {
        None
    } else {
        snapshot.str(id).map(str::to_owned)
    }
}

impl PathEvidence {
    /// Builds the evidence for a path given as nodes and the edge positions (indices into
    /// the snapshot's edge columns) between them. Out-of-range positions read as
    /// unnamed references rather than failing: evidence is advisory.
    pub fn new(
        snapshot: &Snapshot,
        root: Option<&Root>,
        nodes: &[NodeIdx],
        edge_positions: &[usize],
    ) -> Self {
        let flags = |n: NodeIdx| snapshot.nodes.flags.get(n.index()).copied().unwrap_or(0);
        let evidence_nodes = nodes
            .iter()
            .map(|&n| EvidenceNode {
                type_name: snapshot.type_name(n).to_owned(),
                name: snapshot
                    .nodes
                    .name
                    .get(n.index())
                    .and_then(|&s| opt_str(snapshot, s))
                    .filter(|_| flags(n) & node_flags::HAS_VALUE == 0),
                is_module: flags(n) & node_flags::IS_MODULE != 0
                    || snapshot.type_name(n) == "module",
                is_type: flags(n) & node_flags::IS_TYPE != 0,
            })
            .collect();
        let evidence_edges = edge_positions
            .iter()
            .map(|&pos| {
                let kind = snapshot
                    .edges
                    .label_kinds
                    .get(pos)
                    .copied()
                    .unwrap_or(LabelKind::None);
                let value = snapshot.edges.label_values.get(pos).copied().unwrap_or(0);
                EvidenceEdge {
                    kind: kind.into(),
                    text: if kind.value_is_str() {
                        opt_str(snapshot, StrId(value))
                    } else if kind == LabelKind::Index {
                        Some(value.to_string())
                    } else {
                        None
                    },
                }
            })
            .collect();
        let (root_kind, root_name) = match root {
            Some(r) => (
                r.kind,
                opt_str(snapshot, r.name)
                    .or_else(|| {
                        nodes
                            .first()
                            .and_then(|&n| snapshot.nodes.name.get(n.index()))
                            .and_then(|&s| opt_str(snapshot, s))
                    })
                    .unwrap_or_default(),
            ),
            None => (RootKind::External, String::new()),
        };
        PathEvidence {
            root_kind,
            root_name,
            nodes: evidence_nodes,
            edges: evidence_edges,
            retained_types: Vec::new(),
        }
    }

    /// Evidence for a path found by the graph crate.
    pub fn from_path(snapshot: &Snapshot, path: &Path) -> Self {
        let positions: Vec<usize> = path.edges.iter().map(|e| e.index()).collect();
        PathEvidence::new(
            snapshot,
            snapshot.roots.get(path.root.index()),
            &path.nodes,
            &positions,
        )
    }

    /// Type name of the retained object (the last node).
    pub fn leaked_type(&self) -> &str {
        self.nodes.last().map_or("?", |n| n.type_name.as_str())
    }

    /// Whether node `i` is a module (or the module root itself).
    pub fn is_module_at(&self, i: usize) -> bool {
        self.nodes.get(i).is_some_and(|n| n.is_module)
            || (i == 0 && self.root_kind == RootKind::Module)
    }

    /// Whether node `i` is a class: flagged as a type by the capture, or an instance of
    /// `type` or of a well-known metaclass (for snapshots built without flags).
    pub fn is_class_at(&self, i: usize) -> bool {
        self.nodes.get(i).is_some_and(|n| {
            n.is_type
                || matches!(
                    n.type_name.as_str(),
                    "type" | "abc.ABCMeta" | "enum.EnumType" | "enum.EnumMeta"
                )
        })
    }

    /// Name of node `i` as a module (its `__name__`, or the root name for the root).
    pub fn module_name_at(&self, i: usize) -> Option<&str> {
        let node = self.nodes.get(i)?;
        node.name
            .as_deref()
            .or((i == 0).then_some(self.root_name.as_str()))
    }

    /// The object that owns node `i` through a named reference, and how: node `i` must be
    /// reached by an attribute or str-keyed entry (not the `__dict__` link itself). The
    /// owner's `__dict__` (instance, class or module namespace) is looked through, so
    /// `module -> .__dict__ -> ['_CACHE'] -> dict` gives the module.
    pub fn owner_of(&self, i: usize) -> Option<(usize, OwnerKind, &str)> {
        if i == 0 {
            return None;
        }
        let edge = self.edges.get(i - 1)?;
        let name = edge.text.as_deref()?;
        if !matches!(edge.kind, EdgeKind::Attr | EdgeKind::Key) || name == "__dict__" {
            return None;
        }
        let mut holder = i - 1;
        if holder >= 1 {
            let into_holder = &self.edges[holder - 1];
            let holder_type = self.nodes[holder].type_name.as_str();
            if into_holder.kind == EdgeKind::Attr
                && into_holder.text.as_deref() == Some("__dict__")
                && matches!(holder_type, "dict" | "mappingproxy")
            {
                holder -= 1;
            }
        }
        if edge.kind == EdgeKind::Key && holder == i - 1 {
            // A str key in a plain dict that is nobody's namespace: the dict itself is
            // the holder, which is not an attribute owner.
            let holder_node = &self.nodes[holder];
            if !holder_node.is_module && !self.is_class_at(holder) {
                return None;
            }
        }
        let kind = if self.is_module_at(holder) {
            OwnerKind::Module
        } else if self.is_class_at(holder) {
            OwnerKind::Class
        } else {
            OwnerKind::Instance
        };
        Some((holder, kind, name))
    }

    /// Text form of the whole path, for explanations (`module app -> ._SESSIONS -> dict`).
    pub fn describe(&self) -> String {
        let mut out = format!("{} {}", root_kind_name(self.root_kind), self.root_name);
        for (edge, node) in self.edges.iter().zip(self.nodes.iter().skip(1)) {
            out.push_str(" -> ");
            match (&edge.kind, &edge.text) {
                (EdgeKind::Attr, Some(t)) => out.push_str(&format!(".{t} ")),
                (EdgeKind::Key, Some(t)) => out.push_str(&format!("['{t}'] ")),
                (EdgeKind::KeyRepr, Some(t)) | (EdgeKind::Index, Some(t)) => {
                    out.push_str(&format!("[{t}] "))
                }
                (EdgeKind::Local, Some(t)) => out.push_str(&format!("local '{t}' ")),
                (EdgeKind::SetItem, _) => out.push_str("{item} "),
                (EdgeKind::KeyObject, _) => out.push_str("<key> "),
                _ => {}
            }
            out.push_str(&node.type_name);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use heapsight_snapshot::model::SnapshotBuilder;

    /// Evidence for a chain `types[0] -(labels[0])-> types[1] ...` from a module root.
    fn chain(types: &[(&str, u8)], labels: &[(LabelKind, &str)]) -> PathEvidence {
        let mut b = SnapshotBuilder::new();
        let nodes: Vec<NodeIdx> = types.iter().map(|&(t, _)| b.node(t, 64)).collect();
        for (i, &(kind, label)) in labels.iter().enumerate() {
            b.edge_named(nodes[i], nodes[i + 1], kind, label);
        }
        b.root(RootKind::Module, nodes[0], "app", 0);
        let mut snapshot = b.finish();
        for (i, &(_, flags)) in types.iter().enumerate() {
            snapshot.nodes.flags[i] |= flags;
        }
        let positions: Vec<usize> = (0..labels.len()).collect();
        PathEvidence::new(&snapshot, snapshot.roots.first(), &nodes, &positions)
    }

    const MODULE: u8 = node_flags::IS_MODULE;
    const CLASS: u8 = node_flags::IS_TYPE;

    #[test]
    fn owner_looks_through_namespace_dicts() {
        let e = chain(
            &[("module", MODULE), ("dict", 0), ("dict", 0), ("app.S", 0)],
            &[
                (LabelKind::Attr, "__dict__"),
                (LabelKind::Key, "_SESSIONS"),
                (LabelKind::Key, "u1"),
            ],
        );
        assert_eq!(e.owner_of(2), Some((0, OwnerKind::Module, "_SESSIONS")));
        // A key of a plain dict is an entry, not an attribute.
        assert_eq!(e.owner_of(3), None);
        // The namespace link itself owns nothing.
        assert_eq!(e.owner_of(1), None);
        assert_eq!(e.leaked_type(), "app.S");
        assert_eq!(e.module_name_at(0), Some("app"));
    }

    #[test]
    fn owner_kinds_of_classes_and_instances() {
        let e = chain(
            &[("module", MODULE), ("type", CLASS), ("list", 0)],
            &[(LabelKind::Attr, "Bus"), (LabelKind::Attr, "listeners")],
        );
        assert_eq!(e.owner_of(2), Some((1, OwnerKind::Class, "listeners")));
        let e = chain(
            &[
                ("module", MODULE),
                ("app.Client", 0),
                ("dict", 0),
                ("list", 0),
            ],
            &[
                (LabelKind::Attr, "client"),
                (LabelKind::Attr, "__dict__"),
                (LabelKind::Key, "responses"),
            ],
        );
        assert_eq!(e.owner_of(3), Some((1, OwnerKind::Instance, "responses")));
        assert_eq!(e.owner_of(1), Some((0, OwnerKind::Module, "client")));
    }

    #[test]
    fn describe_reads_like_a_path() {
        let e = chain(
            &[("module", MODULE), ("dict", 0), ("app.S", 0)],
            &[(LabelKind::Attr, "_SESSIONS"), (LabelKind::Key, "u1")],
        );
        assert_eq!(
            e.describe(),
            "module app -> ._SESSIONS dict -> ['u1'] app.S"
        );
    }
}
