//! The in-memory heap snapshot: what the capture produces, the file stores and the
//! analysis reads. Columnar so that 10M nodes stay compact and scans stay cache friendly.
//!
//! Invariants (checked by [`Snapshot::validate`], which the reader always runs):
//! - every column of `nodes` has `n_nodes` entries;
//! - `edges.offsets` has `n_nodes + 1` entries, starts at 0, never decreases and ends at
//!   `edges.targets.len()`; `targets`, `label_kinds` and `label_values` have equal lengths;
//! - every `NodeIdx`, `TypeIdx` and `StrId` stored anywhere is in range;
//! - label values are in range for their kind (a string id for string kinds).

/// Index of a node in [`Nodes`] columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeIdx(pub u32);

/// Index of a type in [`Types`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TypeIdx(pub u32);

/// Index of a string in [`StringTable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StrId(pub u32);

impl From<NodeIdx> for u64 {
    fn from(node: NodeIdx) -> u64 {
        u64::from(node.0)
    }
}

impl NodeIdx {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}
impl TypeIdx {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}
impl StrId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Where and when the heap was captured.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metadata {
    pub pid: u32,
    /// `sys.version` of the captured interpreter.
    pub python_version: String,
    pub executable: String,
    pub argv: Vec<String>,
    /// Capture time, milliseconds since the Unix epoch.
    pub time_unix_ms: u64,
    /// Resident set size of the process at capture time, in bytes (0 when unknown).
    pub rss_bytes: u64,
    /// Number of gc-tracked objects found (frozen ones included).
    pub n_gc_tracked: u64,
    /// Number of objects in the permanent generation (`gc.freeze()`).
    pub n_frozen: u64,
    /// Whether short string/bytes values were stored (`include_values=True`).
    pub include_values: bool,
    /// Version of heapsight that wrote the snapshot.
    pub heapsight_version: String,
    /// Milliseconds the walk held the GIL.
    pub walk_ms: u64,
}

/// Interned strings: type names, labels, module names, opted-in values.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StringTable {
    pub strings: Vec<String>,
}

impl StringTable {
    pub fn get(&self, id: StrId) -> Option<&str> {
        self.strings.get(id.index()).map(String::as_str)
    }
    pub fn len(&self) -> usize {
        self.strings.len()
    }
    pub fn is_empty(&self) -> bool {
        self.strings.is_empty()
    }
}

/// One entry per distinct Python type seen. Keyed by the type object's address so two
/// classes named `Item` in different modules stay apart.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Types {
    /// Address of the type object.
    pub address: Vec<u64>,
    /// `module.QualName`, with `builtins.` dropped (`dict`, `app.UserSession`).
    pub name: Vec<StrId>,
}

impl Types {
    pub fn len(&self) -> usize {
        self.address.len()
    }
    pub fn is_empty(&self) -> bool {
        self.address.is_empty()
    }
}

/// Bit flags of a node.
pub mod node_flags {
    /// The object is tracked by the cycle collector.
    pub const GC_TRACKED: u8 = 1 << 0;
    /// The object sits in the permanent generation (`gc.freeze()`).
    pub const FROZEN: u8 = 1 << 1;
    /// Immortal object (3.12+): its refcount is a sentinel, not a count.
    pub const IMMORTAL: u8 = 1 << 2;
    /// `size` came from a user `__sizeof__` or could not be computed exactly.
    pub const SIZE_ESTIMATED: u8 = 1 << 3;
    /// `name` holds the object's value (opt-in `include_values`), not a name.
    pub const HAS_VALUE: u8 = 1 << 4;
    /// The object is a type (class) object.
    pub const IS_TYPE: u8 = 1 << 5;
    /// The object is a module.
    pub const IS_MODULE: u8 = 1 << 6;
}

/// Sentinel for "no string" in optional string columns.
pub const NO_STR: StrId = StrId(u32::MAX);

/// Columnar node table.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Nodes {
    pub address: Vec<u64>,
    pub type_idx: Vec<TypeIdx>,
    /// Bytes, with `sys.getsizeof` semantics (GC header included for gc objects).
    pub size: Vec<u64>,
    pub flags: Vec<u8>,
    /// Refcount at capture time, saturated at `u32::MAX` (immortals: `u32::MAX`).
    pub refcount: Vec<u32>,
    /// A readable name where the object has one (module `__name__`, class or function
    /// `__qualname__`), or its value when `HAS_VALUE` is set; else [`NO_STR`].
    pub name: Vec<StrId>,
    /// Length for sized objects (len of str/bytes/list/dict/...), else 0.
    pub length: Vec<u64>,
}

impl Nodes {
    pub fn len(&self) -> usize {
        self.address.len()
    }
    pub fn is_empty(&self) -> bool {
        self.address.is_empty()
    }
}

/// How a reference is named, when Python has a name for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum LabelKind {
    /// Unnamed reference found by `tp_traverse`.
    None = 0,
    /// Attribute: `.name` (instance `__dict__`, `__slots__`, managed/inline values,
    /// `__class__`, `__dict__`, well-known fields). Value: [`StrId`].
    Attr = 1,
    /// Dict value under a str key: `['key']`. Value: [`StrId`] of the key.
    Key = 2,
    /// Dict value under a non-str key, shown as a repr without quotes: `[42]`,
    /// `[<tuple>]`. Value: [`StrId`] of the rendered key.
    KeyRepr = 3,
    /// A dict key object itself (the reference a dict holds to its key). Value unused (0).
    KeyObject = 4,
    /// Sequence position: `[3]`. Value: the index.
    Index = 5,
    /// A frame local or closure variable: `local 'name'`. Value: [`StrId`].
    Local = 6,
    /// A set or frozenset element. Value unused (0).
    SetItem = 7,
}

impl LabelKind {
    pub fn from_u8(raw: u8) -> Option<LabelKind> {
        Some(match raw {
            0 => LabelKind::None,
            1 => LabelKind::Attr,
            2 => LabelKind::Key,
            3 => LabelKind::KeyRepr,
            4 => LabelKind::KeyObject,
            5 => LabelKind::Index,
            6 => LabelKind::Local,
            7 => LabelKind::SetItem,
            _ => return None,
        })
    }

    /// Whether the label value is a string id (and so must be in range).
    pub fn value_is_str(self) -> bool {
        matches!(
            self,
            LabelKind::Attr | LabelKind::Key | LabelKind::KeyRepr | LabelKind::Local
        )
    }
}

/// Outgoing references in CSR form: the edges of node `i` are
/// `offsets[i]..offsets[i + 1]` in the other columns.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Edges {
    pub offsets: Vec<u64>,
    pub targets: Vec<NodeIdx>,
    pub label_kinds: Vec<LabelKind>,
    pub label_values: Vec<u32>,
}

impl Edges {
    pub fn len(&self) -> usize {
        self.targets.len()
    }
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }
    /// Range of edge positions for `node`; empty when out of range.
    pub fn range_of(&self, node: NodeIdx) -> std::ops::Range<usize> {
        let i = node.index();
        match (self.offsets.get(i), self.offsets.get(i + 1)) {
            (Some(&start), Some(&end)) => start as usize..end as usize,
            _ => 0..0,
        }
    }
}

/// Why an object is alive from outside the object graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RootKind {
    /// A module in `sys.modules`; name: the module name.
    Module = 0,
    /// The innermost frame of a thread; name: the thread name.
    Thread = 1,
    /// Referenced from outside the graph: refcount above the in-degree found (C
    /// extensions, interpreter internals). `extra`: the unexplained reference count.
    External = 2,
    /// Interpreter-level objects (`sys`, `builtins`, the type of immortals...); name says which.
    Interpreter = 3,
}

impl RootKind {
    pub fn from_u8(raw: u8) -> Option<RootKind> {
        Some(match raw {
            0 => RootKind::Module,
            1 => RootKind::Thread,
            2 => RootKind::External,
            3 => RootKind::Interpreter,
            _ => return None,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Root {
    pub kind: RootKind,
    pub node: NodeIdx,
    /// Module name, thread name, ... or [`NO_STR`].
    pub name: StrId,
    /// Kind-specific number: unexplained refcount for `External`, thread id for `Thread`.
    pub extra: u64,
}

/// A container whose capacity is fixed by the program (`functools.lru_cache(maxsize=N)`,
/// `deque(maxlen=N)`): what it holds stops growing at `capacity` entries, so growth under
/// it is a cache filling, not a leak. `capacity: None` records an explicitly unbounded
/// one (`lru_cache(maxsize=None)`, a `deque` without `maxlen`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bound {
    pub node: NodeIdx,
    pub capacity: Option<u64>,
}

/// A whole captured heap.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    pub metadata: Metadata,
    pub strings: StringTable,
    pub types: Types,
    pub nodes: Nodes,
    pub edges: Edges,
    pub roots: Vec<Root>,
    /// Containers of known capacity, sorted by node (optional section "container bounds").
    pub bounds: Vec<Bound>,
}

/// What is wrong with an in-memory snapshot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("inconsistent snapshot: {0}")]
pub struct ModelError(pub String);

impl Snapshot {
    pub fn n_nodes(&self) -> usize {
        self.nodes.len()
    }

    pub fn type_name(&self, node: NodeIdx) -> &str {
        self.nodes
            .type_idx
            .get(node.index())
            .and_then(|t| self.types.name.get(t.index()))
            .and_then(|s| self.strings.get(*s))
            .unwrap_or("?")
    }

    pub fn str(&self, id: StrId) -> Option<&str> {
        self.strings.get(id)
    }

    /// Checks every invariant listed in the module docs.
    pub fn validate(&self) -> Result<(), ModelError> {
        let err = |m: String| Err(ModelError(m));
        let n = self.nodes.len();
        let n_strings = self.strings.len();
        let nodes = &self.nodes;
        for (col, len) in [
            ("type_idx", nodes.type_idx.len()),
            ("size", nodes.size.len()),
            ("flags", nodes.flags.len()),
            ("refcount", nodes.refcount.len()),
            ("name", nodes.name.len()),
            ("length", nodes.length.len()),
        ] {
            if len != n {
                return err(format!("node column {col} has {len} entries, expected {n}"));
            }
        }
        if n > u32::MAX as usize {
            return err(format!("{n} nodes exceed the 2^32 limit"));
        }
        if self.types.name.len() != self.types.address.len() {
            return err("type columns differ in length".into());
        }
        for s in &self.types.name {
            if s.index() >= n_strings {
                return err(format!("type name string {} out of range", s.0));
            }
        }
        let n_types = self.types.len();
        if let Some(t) = nodes.type_idx.iter().find(|t| t.index() >= n_types) {
            return err(format!("node type {} out of range ({n_types} types)", t.0));
        }
        if let Some(s) = nodes
            .name
            .iter()
            .find(|s| **s != NO_STR && s.index() >= n_strings)
        {
            return err(format!("node name string {} out of range", s.0));
        }
        let e = &self.edges;
        if e.offsets.len() != n + 1 {
            return err(format!(
                "edge offsets have {} entries, expected {}",
                e.offsets.len(),
                n + 1
            ));
        }
        if e.offsets.first() != Some(&0) {
            return err("edge offsets do not start at 0".into());
        }
        if e.offsets.windows(2).any(|w| w[0] > w[1]) {
            return err("edge offsets decrease".into());
        }
        let m = e.targets.len();
        if e.offsets.last().copied() != Some(m as u64) {
            return err(format!(
                "edge offsets end at {:?}, expected {m}",
                e.offsets.last()
            ));
        }
        if e.label_kinds.len() != m || e.label_values.len() != m {
            return err("edge columns differ in length".into());
        }
        if let Some(t) = e.targets.iter().find(|t| t.index() >= n) {
            return err(format!("edge target {} out of range ({n} nodes)", t.0));
        }
        for (kind, value) in e.label_kinds.iter().zip(&e.label_values) {
            if kind.value_is_str() && *value as usize >= n_strings {
                return err(format!("edge label string {value} out of range"));
            }
        }
        for root in &self.roots {
            if root.node.index() >= n {
                return err(format!("root node {} out of range", root.node.0));
            }
            if root.name != NO_STR && root.name.index() >= n_strings {
                return err(format!("root name string {} out of range", root.name.0));
            }
        }
        let mut previous: Option<NodeIdx> = None;
        for bound in &self.bounds {
            if bound.node.index() >= n {
                return err(format!("bounded container {} out of range", bound.node.0));
            }
            if previous.is_some_and(|p| p >= bound.node) {
                return err("bounded containers are not sorted by node".into());
            }
            previous = Some(bound.node);
        }
        Ok(())
    }
}

/// Builds snapshots in tests and in the capture: interns strings and types, appends
/// nodes, then edges grouped by source node.
#[derive(Default)]
pub struct SnapshotBuilder {
    snapshot: Snapshot,
    string_ids: std::collections::HashMap<String, StrId>,
    type_ids: std::collections::HashMap<u64, TypeIdx>,
    pending_edges: Vec<(NodeIdx, NodeIdx, LabelKind, u32)>,
}

impl SnapshotBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn metadata_mut(&mut self) -> &mut Metadata {
        &mut self.snapshot.metadata
    }

    pub fn intern(&mut self, s: &str) -> StrId {
        if let Some(id) = self.string_ids.get(s) {
            return *id;
        }
        let id = StrId(self.snapshot.strings.strings.len() as u32);
        self.snapshot.strings.strings.push(s.to_owned());
        self.string_ids.insert(s.to_owned(), id);
        id
    }

    /// Registers a type by the address of its type object.
    pub fn add_type(&mut self, type_address: u64, qualified_name: &str) -> TypeIdx {
        if let Some(t) = self.type_ids.get(&type_address) {
            return *t;
        }
        let name = self.intern(qualified_name);
        let idx = TypeIdx(self.snapshot.types.address.len() as u32);
        self.snapshot.types.address.push(type_address);
        self.snapshot.types.name.push(name);
        self.type_ids.insert(type_address, idx);
        idx
    }

    /// Convenience for tests: a type whose address is derived from its name.
    pub fn type_named(&mut self, qualified_name: &str) -> TypeIdx {
        if let Some(id) = self.string_ids.get(qualified_name) {
            if let Some(pos) = self.snapshot.types.name.iter().position(|n| n == id) {
                return TypeIdx(pos as u32);
            }
        }
        let fake_address = 0x7000_0000_0000 + self.snapshot.types.len() as u64 * 0x1000;
        self.add_type(fake_address, qualified_name)
    }

    #[allow(clippy::too_many_arguments)]
    pub fn add_node(
        &mut self,
        address: u64,
        type_idx: TypeIdx,
        size: u64,
        flags: u8,
        refcount: u32,
        name: StrId,
        length: u64,
    ) -> NodeIdx {
        let nodes = &mut self.snapshot.nodes;
        let idx = NodeIdx(nodes.address.len() as u32);
        nodes.address.push(address);
        nodes.type_idx.push(type_idx);
        nodes.size.push(size);
        nodes.flags.push(flags);
        nodes.refcount.push(refcount);
        nodes.name.push(name);
        nodes.length.push(length);
        idx
    }

    /// Convenience for tests: a node of type `type_name` with `size` bytes.
    pub fn node(&mut self, type_name: &str, size: u64) -> NodeIdx {
        let t = self.type_named(type_name);
        let address = 0x1000_0000 + self.snapshot.nodes.len() as u64 * 0x40;
        self.add_node(address, t, size, node_flags::GC_TRACKED, 1, NO_STR, 0)
    }

    pub fn edge(&mut self, from: NodeIdx, to: NodeIdx, kind: LabelKind, value: u32) {
        self.pending_edges.push((from, to, kind, value));
    }

    /// Edge labelled with a string (attribute, key, local).
    pub fn edge_named(&mut self, from: NodeIdx, to: NodeIdx, kind: LabelKind, label: &str) {
        let id = self.intern(label);
        self.edge(from, to, kind, id.0);
    }

    pub fn root(&mut self, kind: RootKind, node: NodeIdx, name: &str, extra: u64) {
        let name = self.intern(name);
        self.snapshot.roots.push(Root {
            kind,
            node,
            name,
            extra,
        });
    }

    /// Sorts pending edges into CSR form (stable: edges of a node keep insertion order).
    pub fn finish(mut self) -> Snapshot {
        let n = self.snapshot.nodes.len();
        let mut pending = std::mem::take(&mut self.pending_edges);
        pending.sort_by_key(|e| e.0);
        let edges = &mut self.snapshot.edges;
        edges.offsets = Vec::with_capacity(n + 1);
        edges.offsets.push(0);
        let mut next = 0usize;
        for node in 0..n {
            while next < pending.len() && pending[next].0.index() == node {
                let (_, to, kind, value) = pending[next];
                edges.targets.push(to);
                edges.label_kinds.push(kind);
                edges.label_values.push(value);
                next += 1;
            }
            edges.offsets.push(edges.targets.len() as u64);
        }
        self.snapshot
    }
}
