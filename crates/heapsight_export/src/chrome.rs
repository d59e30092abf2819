//! A heap snapshot as a V8 `.heapsnapshot` file, the JSON format Chrome DevTools' Memory
//! panel, memlab and other JavaScript heap tools load. The mapping of heapsight's model onto
//! V8's fields, and what it loses, is in `docs/chrome-export.md`.
//!
//! Layout of the output:
//! - node 0 is the synthetic root (id 1, as V8's); it points at `(GC roots)`, which points at
//!   one synthetic group per root kind (`(Python modules)`, `(Python threads)`,
//!   `(Python interpreter)`, `(Native references)`), each pointing at its root objects; and
//!   at `(Unreachable)`, which points at one entry object per garbage component, chosen as
//!   heapsight's dominator tree does, so retained sizes computed by a V8 tool equal
//!   heapsight's;
//! - then one node per snapshot node, in snapshot order, with its edges in snapshot order;
//!   edges from garbage into the live heap are `weak`, which V8 tools leave out of dominators
//!   (heapsight ignores them too).
//!
//! The file is streamed through a buffered writer: memory stays proportional to the node
//! count (ids, reachability), never to the JSON text.

use std::collections::{HashMap, HashSet};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use heapsight_snapshot::{node_flags, LabelKind, NodeIdx, RootKind, Snapshot, TypeIdx, NO_STR};

/// V8 node types, in the order of `meta.node_types[0]`.
const NODE_TYPES: [&str; 14] = [
    "hidden",
    "array",
    "string",
    "object",
    "code",
    "closure",
    "regexp",
    "number",
    "native",
    "synthetic",
    "concatenated string",
    "sliced string",
    "symbol",
    "bigint",
];
const T_STRING: u8 = 2;
const T_OBJECT: u8 = 3;
const T_CODE: u8 = 4;
const T_CLOSURE: u8 = 5;
const T_NUMBER: u8 = 7;
const T_SYNTHETIC: u8 = 9;

/// V8 edge types, in the order of `meta.edge_types[0]`.
const EDGE_TYPES: [&str; 7] = [
    "context", "element", "property", "internal", "hidden", "shortcut", "weak",
];
const E_CONTEXT: u8 = 0;
const E_ELEMENT: u8 = 1;
const E_PROPERTY: u8 = 2;
const E_INTERNAL: u8 = 3;
const E_HIDDEN: u8 = 4;
const E_WEAK: u8 = 6;

/// `type, name, id, self_size, edge_count, trace_node_id, detachedness`.
const NODE_FIELDS: u64 = 7;

/// Synthetic nodes before the heap's own, in output order.
const ROOT: usize = 0;
const GC_ROOTS: usize = 1;
const MODULES: usize = 2;
const THREADS: usize = 3;
const INTERPRETER: usize = 4;
const NATIVE: usize = 5;
const UNREACHABLE: usize = 6;
const SYNTHETIC_NAMES: [&str; 7] = [
    "",
    "(GC roots)",
    "(Python modules)",
    "(Python threads)",
    "(Python interpreter)",
    "(Native references)",
    "(Unreachable)",
];
const N_SYNTHETIC: usize = SYNTHETIC_NAMES.len();

/// What an export wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChromeStats {
    /// Nodes in the file, synthetic ones included.
    pub nodes: u64,
    /// Edges in the file, synthetic ones included.
    pub edges: u64,
    /// Objects no root reaches (under `(Unreachable)`).
    pub unreachable: u64,
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Creating, writing or renaming the output failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The destination.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The snapshot breaks its own invariants (the reader validates, so this is a bug).
    #[error("the snapshot is inconsistent: {0}")]
    Inconsistent(String),
}

/// Writes `snapshot` to `path` as a `.heapsnapshot`: streamed into a temporary file in the
/// same directory, flushed to disk, then renamed over `path`, so a failure never leaves half a
/// file. Owner-only permissions, as for `.hsnap` files: names from the heap are inside.
pub fn export_file(snapshot: &Snapshot, path: &Path) -> Result<ChromeStats, ExportError> {
    let io_error = |source| ExportError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let file_name = path.file_name().ok_or_else(|| {
        io_error(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the path does not name a file",
        ))
    })?;
    let temp = tempfile::Builder::new()
        .prefix(&format!(".{}.", file_name.to_string_lossy()))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(io_error)?;
    let stats = {
        let mut out = BufWriter::with_capacity(1 << 20, temp.as_file());
        let stats = write_heapsnapshot(snapshot, &mut out)?;
        out.flush().map_err(io_error)?;
        stats
    };
    temp.as_file().sync_all().map_err(io_error)?;
    temp.persist(path).map_err(|e| io_error(e.error))?;
    Ok(stats)
}

/// Writes `snapshot` as `.heapsnapshot` JSON to `out` (see the module docs for the layout).
pub fn write_heapsnapshot(
    snapshot: &Snapshot,
    out: &mut impl Write,
) -> Result<ChromeStats, ExportError> {
    snapshot
        .validate()
        .map_err(|e| ExportError::Inconsistent(e.to_string()))?;
    let plan = Plan::new(snapshot);
    plan.write(snapshot, out).map_err(|source| ExportError::Io {
        path: PathBuf::from("(output)"),
        source,
    })
}

/// Liveness of a node, as heapsight's dominator tree sees it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reach {
    Unseen,
    /// Reached from a root.
    Live,
    /// Reached only from an `(Unreachable)` entry.
    Garbage,
}

/// Everything decided before writing: ids, reachability, extra strings, synthetic edges.
struct Plan {
    ids: Vec<u32>,
    reach: Vec<Reach>,
    unreachable_entries: Vec<NodeIdx>,
    /// Per type: V8 node type.
    type_kind: Vec<u8>,
    /// Strings beyond the snapshot's own, numbered from `snapshot.strings.len()`.
    extra: Vec<String>,
    extra_index: HashMap<String, u32>,
    /// Name string per node (index into the combined table).
    names: Vec<u32>,
    /// Synthetic edges per synthetic node: (edge type, name or index, target position).
    synthetic_edges: Vec<Vec<(u8, u32, u64)>>,
    /// The string `?`, for names that cannot be told.
    unnamed: u32,
}

impl Plan {
    fn new(snapshot: &Snapshot) -> Plan {
        let mut plan = Plan {
            ids: Vec::new(),
            reach: Vec::new(),
            unreachable_entries: Vec::new(),
            type_kind: snapshot
                .types
                .name
                .iter()
                .map(|s| v8_type_of(snapshot.str(*s).unwrap_or("")))
                .collect(),
            extra: Vec::new(),
            extra_index: HashMap::new(),
            names: Vec::new(),
            synthetic_edges: vec![Vec::new(); N_SYNTHETIC],
            unnamed: 0,
        };
        plan.ids = node_ids(snapshot);
        plan.mark_reachability(snapshot);
        plan.name_weak_positions(snapshot);
        plan.name_nodes(snapshot);
        plan.link_synthetic(snapshot);
        plan
    }

    fn string(&mut self, snapshot: &Snapshot, text: &str) -> u32 {
        if let Some(&id) = self.extra_index.get(text) {
            return id;
        }
        let id = (snapshot.strings.len() + self.extra.len()) as u32;
        self.extra.push(text.to_owned());
        self.extra_index.insert(text.to_owned(), id);
        id
    }

    /// Roots first, then each node still unseen in index order starts a garbage component:
    /// the same entry points heapsight's dominator tree attaches to its super-root.
    fn mark_reachability(&mut self, snapshot: &Snapshot) {
        let n = snapshot.n_nodes();
        self.reach = vec![Reach::Unseen; n];
        let mut stack: Vec<NodeIdx> = Vec::new();
        for root in &snapshot.roots {
            if self.reach[root.node.index()] == Reach::Unseen {
                self.reach[root.node.index()] = Reach::Live;
                stack.push(root.node);
            }
        }
        self.flood(snapshot, &mut stack, Reach::Live);
        for i in 0..n {
            if self.reach[i] == Reach::Unseen {
                self.reach[i] = Reach::Garbage;
                self.unreachable_entries.push(NodeIdx(i as u32));
                stack.push(NodeIdx(i as u32));
                self.flood(snapshot, &mut stack, Reach::Garbage);
            }
        }
    }

    /// Weak edges have string names in V8; the positions of those that had numbers (element
    /// and hidden edges from garbage into live objects) are interned as decimal text.
    fn name_weak_positions(&mut self, snapshot: &Snapshot) {
        let e = &snapshot.edges;
        let mut texts = Vec::new();
        for i in 0..snapshot.n_nodes() {
            if self.reach[i] != Reach::Garbage {
                continue;
            }
            for (ordinal, k) in e.range_of(NodeIdx(i as u32)).enumerate() {
                if self.reach[e.targets[k].index()] != Reach::Live {
                    continue;
                }
                match e.label_kinds[k] {
                    LabelKind::Index => texts.push(e.label_values[k].to_string()),
                    LabelKind::SetItem | LabelKind::None => texts.push(ordinal.to_string()),
                    _ => {}
                }
            }
        }
        for text in texts {
            self.string(snapshot, &text);
        }
    }

    fn flood(&mut self, snapshot: &Snapshot, stack: &mut Vec<NodeIdx>, mark: Reach) {
        while let Some(node) = stack.pop() {
            for &target in &snapshot.edges.targets[snapshot.edges.range_of(node)] {
                if self.reach[target.index()] == Reach::Unseen {
                    self.reach[target.index()] = mark;
                    stack.push(target);
                }
            }
        }
    }

    /// V8 names objects by constructor; a Python object's type plays that part. Objects with
    /// a name of their own (modules, classes, functions) add it, so `module app` and
    /// `type app.Session` stand out; strings with a stored value are named by it, as in V8.
    fn name_nodes(&mut self, snapshot: &Snapshot) {
        let nodes = &snapshot.nodes;
        let mut names = Vec::with_capacity(snapshot.n_nodes());
        for i in 0..snapshot.n_nodes() {
            let type_idx = nodes.type_idx[i];
            let type_name_id = snapshot
                .types
                .name
                .get(type_idx.index())
                .map_or(NO_STR, |s| *s);
            let own = nodes.name[i];
            let kind = self.kind_of(type_idx);
            let has_value = nodes.flags[i] & node_flags::HAS_VALUE != 0;
            let name = if own == NO_STR {
                type_name_id.0
            } else if has_value || kind == T_CLOSURE || kind == T_CODE {
                own.0
            } else {
                let text = format!(
                    "{} {}",
                    snapshot.type_name(NodeIdx(i as u32)),
                    snapshot.str(own).unwrap_or("?")
                );
                self.string(snapshot, &text)
            };
            names.push(name);
        }
        self.names = names;
    }

    fn kind_of(&self, type_idx: TypeIdx) -> u8 {
        self.type_kind
            .get(type_idx.index())
            .copied()
            .unwrap_or(T_OBJECT)
    }

    fn link_synthetic(&mut self, snapshot: &Snapshot) {
        let position = |i: usize| i as u64 * NODE_FIELDS;
        let real = |node: NodeIdx| (N_SYNTHETIC + node.index()) as u64 * NODE_FIELDS;
        self.synthetic_edges[ROOT].push((E_ELEMENT, 1, position(GC_ROOTS)));
        self.synthetic_edges[ROOT].push((E_ELEMENT, 2, position(UNREACHABLE)));
        for (k, group) in [MODULES, THREADS, INTERPRETER, NATIVE]
            .into_iter()
            .enumerate()
        {
            self.synthetic_edges[GC_ROOTS].push((E_ELEMENT, k as u32 + 1, position(group)));
        }
        let unnamed = self.string(snapshot, "?");
        self.unnamed = unnamed;
        self.string(snapshot, "<key>");
        for root in &snapshot.roots {
            let (group, edge) = match root.kind {
                RootKind::Module => (MODULES, E_PROPERTY),
                RootKind::Thread => (THREADS, E_PROPERTY),
                RootKind::Interpreter => (INTERPRETER, E_PROPERTY),
                RootKind::External => (NATIVE, E_ELEMENT),
            };
            let name = if edge == E_ELEMENT {
                self.synthetic_edges[group].len() as u32
            } else if root.name != NO_STR {
                root.name.0
            } else {
                unnamed
            };
            self.synthetic_edges[group].push((edge, name, real(root.node)));
        }
        let entries: Vec<(u8, u32, u64)> = self
            .unreachable_entries
            .iter()
            .enumerate()
            .map(|(k, node)| (E_ELEMENT, k as u32, real(*node)))
            .collect();
        self.synthetic_edges[UNREACHABLE] = entries;
    }

    fn write(&self, snapshot: &Snapshot, out: &mut impl Write) -> io::Result<ChromeStats> {
        let mut num = NumWriter::default();
        let n_synthetic_edges: usize = self.synthetic_edges.iter().map(Vec::len).sum();
        let node_count = (N_SYNTHETIC + snapshot.n_nodes()) as u64;
        let edge_count = (n_synthetic_edges + snapshot.edges.len()) as u64;
        write_header(out, node_count, edge_count)?;

        // Strings for the synthetic names come after the snapshot's and the extra ones.
        let synthetic_base = (snapshot.strings.len() + self.extra.len()) as u64;
        out.write_all(b"\"nodes\":[")?;
        for (i, edges) in self.synthetic_edges.iter().enumerate() {
            if i > 0 {
                out.write_all(b",\n")?;
            }
            let id = 2 * i as u64 + 1;
            num.row(
                out,
                &[
                    u64::from(T_SYNTHETIC),
                    synthetic_base + i as u64,
                    id,
                    0,
                    edges.len() as u64,
                    0,
                    0,
                ],
            )?;
        }
        let nodes = &snapshot.nodes;
        for i in 0..snapshot.n_nodes() {
            out.write_all(b",\n")?;
            let range = snapshot.edges.range_of(NodeIdx(i as u32));
            num.row(
                out,
                &[
                    u64::from(self.kind_of(nodes.type_idx[i])),
                    u64::from(self.names[i]),
                    u64::from(self.ids[i]),
                    nodes.size[i].min(u64::from(u32::MAX)),
                    range.len() as u64,
                    0,
                    0,
                ],
            )?;
        }
        out.write_all(b"],\n\"edges\":[")?;
        let mut first = true;
        for edges in &self.synthetic_edges {
            for &(kind, name, to) in edges {
                if !first {
                    out.write_all(b",\n")?;
                }
                first = false;
                num.row(out, &[u64::from(kind), u64::from(name), to])?;
            }
        }
        let key_object = u64::from(self.extra_index.get("<key>").copied().unwrap_or(0));
        let e = &snapshot.edges;
        for i in 0..snapshot.n_nodes() {
            let range = e.range_of(NodeIdx(i as u32));
            let from_garbage = self.reach[i] == Reach::Garbage;
            for (ordinal, k) in range.enumerate() {
                let target = e.targets[k];
                let (kind, name) = match e.label_kinds[k] {
                    LabelKind::Attr | LabelKind::Key | LabelKind::KeyRepr => {
                        (E_PROPERTY, u64::from(e.label_values[k]))
                    }
                    LabelKind::Local => (E_CONTEXT, u64::from(e.label_values[k])),
                    LabelKind::Index => (E_ELEMENT, u64::from(e.label_values[k])),
                    LabelKind::SetItem => (E_ELEMENT, ordinal as u64),
                    LabelKind::KeyObject => (E_INTERNAL, key_object),
                    LabelKind::None => (E_HIDDEN, ordinal as u64),
                };
                // heapsight's dominators ignore references from garbage into live objects;
                // weak edges are what V8 tools leave out of theirs. V8 names weak edges by
                // string, so a position becomes its decimal text.
                let (kind, name) = if from_garbage && self.reach[target.index()] == Reach::Live {
                    let name = if kind == E_ELEMENT || kind == E_HIDDEN {
                        self.extra_index
                            .get(&name.to_string())
                            .map_or(u64::from(self.unnamed), |id| u64::from(*id))
                    } else {
                        name
                    };
                    (E_WEAK, name)
                } else {
                    (kind, name)
                };
                if !first {
                    out.write_all(b",\n")?;
                }
                first = false;
                let to = (N_SYNTHETIC + target.index()) as u64 * NODE_FIELDS;
                num.row(out, &[u64::from(kind), name, to])?;
            }
        }
        out.write_all(
            b"],\n\"trace_function_infos\":[],\n\"trace_tree\":[],\n\"samples\":[],\n\"locations\":[],\n\"strings\":[",
        )?;
        let all = snapshot
            .strings
            .strings
            .iter()
            .map(String::as_str)
            .chain(self.extra.iter().map(String::as_str))
            .chain(SYNTHETIC_NAMES);
        for (i, text) in all.enumerate() {
            if i > 0 {
                out.write_all(b",\n")?;
            }
            serde_json::to_writer(&mut *out, text).map_err(io::Error::other)?;
        }
        out.write_all(b"]}\n")?;
        Ok(ChromeStats {
            nodes: node_count,
            edges: edge_count,
            unreachable: self.reach.iter().filter(|r| **r == Reach::Garbage).count() as u64,
        })
    }
}

fn write_header(out: &mut impl Write, node_count: u64, edge_count: u64) -> io::Result<()> {
    let node_types = serde_json::to_string(&NODE_TYPES).map_err(io::Error::other)?;
    let edge_types = serde_json::to_string(&EDGE_TYPES).map_err(io::Error::other)?;
    writeln!(
        out,
        "{{\"snapshot\":{{\"meta\":{{\"node_fields\":[\"type\",\"name\",\"id\",\"self_size\",\"edge_count\",\"trace_node_id\",\"detachedness\"],\
\"node_types\":[{node_types},\"string\",\"number\",\"number\",\"number\",\"number\",\"number\"],\
\"edge_fields\":[\"type\",\"name_or_index\",\"to_node\"],\
\"edge_types\":[{edge_types},\"string_or_number\",\"node\"],\
\"trace_function_info_fields\":[\"function_id\",\"name\",\"script_name\",\"script_id\",\"line\",\"column\"],\
\"trace_node_fields\":[\"id\",\"function_info_index\",\"count\",\"size\",\"children\"],\
\"sample_fields\":[\"timestamp_us\",\"last_assigned_id\"],\
\"location_fields\":[\"object_index\",\"script_id\",\"line\",\"column\"]}},\
\"node_count\":{node_count},\"edge_count\":{edge_count},\"trace_function_count\":0}},"
    )
}

/// V8 node type for a Python type name. Containers stay `object` (not `array`): DevTools
/// groups every `array` node into one `(array)` row, which would hide list from tuple.
fn v8_type_of(type_name: &str) -> u8 {
    match type_name {
        "str" | "bytes" | "bytearray" => T_STRING,
        "int" | "float" | "complex" | "bool" => T_NUMBER,
        "function" | "builtin_function_or_method" | "method" | "functools.partial" => T_CLOSURE,
        "code" => T_CODE,
        _ => T_OBJECT,
    }
}

/// Node ids: odd (as V8's heap object ids), 32-bit (DevTools and memlab keep them in
/// `Uint32Array`s) and derived from the address, so the same object at the same address has
/// the same id in two exports and DevTools' comparison view can match them. CPython objects
/// are 16-byte aligned, so `address / 16` loses nothing within a 32 GiB span; the rare
/// collisions beyond it, and with the synthetic nodes' ids `1..2 * N_SYNTHETIC`, get fresh
/// odd ids.
fn node_ids(snapshot: &Snapshot) -> Vec<u32> {
    let mut ids: Vec<u32> = snapshot
        .nodes
        .address
        .iter()
        .map(|a| ((a >> 4) as u32).wrapping_mul(2) | 1)
        .collect();
    let synthetic: Vec<u32> = (0..N_SYNTHETIC as u32).map(|i| 2 * i + 1).collect();
    let mut sorted = ids.clone();
    sorted.extend_from_slice(&synthetic);
    sorted.sort_unstable();
    let duplicated: HashSet<u32> = sorted
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0])
        .collect();
    if duplicated.is_empty() {
        return ids;
    }
    let mut taken: HashSet<u32> = synthetic.into_iter().collect();
    let mut next = 2 * N_SYNTHETIC as u32 + 1;
    for id in ids.iter_mut() {
        if !duplicated.contains(id) || taken.insert(*id) {
            continue;
        }
        while sorted.binary_search(&next).is_ok() || taken.contains(&next) {
            next = next.wrapping_add(2);
        }
        *id = next;
        taken.insert(next);
    }
    ids
}

/// Decimal formatting of the number rows without going through `fmt`.
#[derive(Default)]
struct NumWriter {
    line: Vec<u8>,
}

impl NumWriter {
    fn row(&mut self, out: &mut impl Write, values: &[u64]) -> io::Result<()> {
        self.line.clear();
        for (k, &value) in values.iter().enumerate() {
            if k > 0 {
                self.line.push(b',');
            }
            let mut digits = [0u8; 20];
            let mut at = digits.len();
            let mut v = value;
            loop {
                at -= 1;
                digits[at] = b'0' + (v % 10) as u8;
                v /= 10;
                if v == 0 {
                    break;
                }
            }
            self.line.extend_from_slice(&digits[at..]);
        }
        out.write_all(&self.line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use heapsight_snapshot::SnapshotBuilder;
    use serde_json::Value;

    fn leak() -> Snapshot {
        let mut b = SnapshotBuilder::new();
        let module_type = b.type_named("module");
        let app = b.intern("app");
        let module = b.add_node(0x1000, module_type, 72, 0, 1, app, 0);
        let globals = b.node("dict", 360);
        let cache = b.node("dict", 640);
        let sessions: Vec<NodeIdx> = (0..3).map(|_| b.node("app.Session", 48)).collect();
        let garbage = b.node("list", 88);
        b.edge_named(module, globals, LabelKind::Attr, "__dict__");
        b.edge_named(globals, cache, LabelKind::Key, "_CACHE");
        for (k, s) in sessions.iter().enumerate() {
            b.edge_named(cache, *s, LabelKind::Key, &format!("u{k}"));
        }
        b.edge(garbage, sessions[0], LabelKind::Index, 0);
        b.root(RootKind::Module, module, "app", 0);
        b.finish()
    }

    fn export(snapshot: &Snapshot) -> Value {
        let mut bytes = Vec::new();
        write_heapsnapshot(snapshot, &mut bytes).expect("export");
        serde_json::from_slice(&bytes).expect("valid JSON")
    }

    #[test]
    fn layout_follows_v8() {
        let snapshot = leak();
        let json = export(&snapshot);
        let nodes = json["nodes"].as_array().expect("nodes");
        let edges = json["edges"].as_array().expect("edges");
        let strings = json["strings"].as_array().expect("strings");
        let n = N_SYNTHETIC + snapshot.n_nodes();
        assert_eq!(nodes.len(), n * NODE_FIELDS as usize);
        assert_eq!(json["snapshot"]["node_count"], n as u64);
        assert_eq!(edges.len() % 3, 0);
        let edge_total: u64 = nodes
            .chunks(7)
            .map(|row| row[4].as_u64().expect("count"))
            .sum();
        assert_eq!(edge_total as usize * 3, edges.len());
        // The root is synthetic, id 1, named "".
        assert_eq!(nodes[0], 9);
        assert_eq!(nodes[2], 1);
        assert_eq!(strings[nodes[1].as_u64().expect("name") as usize], "");
        // Ids are odd and unique.
        let ids: HashSet<u64> = nodes
            .chunks(7)
            .map(|r| r[2].as_u64().expect("id"))
            .collect();
        assert_eq!(ids.len(), n);
        assert!(ids.iter().all(|id| id % 2 == 1));
        // The module is named with its own name, the sessions by their type.
        let name_of = |k: usize| {
            let row = &nodes[(N_SYNTHETIC + k) * 7..];
            strings[row[1].as_u64().expect("name") as usize]
                .as_str()
                .expect("str")
                .to_owned()
        };
        assert_eq!(name_of(0), "module app");
        assert_eq!(name_of(3), "app.Session");
        // Every edge points at the start of a node row.
        assert!(edges
            .chunks(3)
            .all(|e| e[2].as_u64().expect("to") % NODE_FIELDS == 0));
    }

    #[test]
    fn garbage_hangs_under_unreachable_with_weak_edges_into_the_live_heap() {
        let snapshot = leak();
        let json = export(&snapshot);
        let edges = json["edges"].as_array().expect("edges");
        let weak = edges
            .chunks(3)
            .filter(|e| e[0] == u64::from(E_WEAK))
            .count();
        assert_eq!(weak, 1);
        let strings = json["strings"].as_array().expect("strings");
        let weak_edge = edges
            .chunks(3)
            .find(|e| e[0] == u64::from(E_WEAK))
            .expect("weak edge");
        // V8 names weak edges by string: the list position 0 becomes "0".
        assert_eq!(strings[weak_edge[1].as_u64().expect("name") as usize], "0");
        let mut buf = Vec::new();
        let stats = write_heapsnapshot(&snapshot, &mut buf).expect("export");
        assert_eq!(stats.unreachable, 1);
    }

    #[test]
    fn colliding_addresses_get_fresh_ids() {
        let mut b = SnapshotBuilder::new();
        let t = b.type_named("dict");
        b.add_node(0x10, t, 1, 0, 1, NO_STR, 0);
        b.add_node(0x10 + (1 << 36), t, 1, 0, 1, NO_STR, 0);
        b.add_node(0, t, 1, 0, 1, NO_STR, 0);
        let snapshot = b.finish();
        let ids = node_ids(&snapshot);
        let unique: HashSet<u32> = ids.iter().copied().collect();
        assert_eq!(unique.len(), 3);
        assert!(ids
            .iter()
            .all(|id| id % 2 == 1 && *id >= 2 * N_SYNTHETIC as u32));
    }

    /// Counts bytes and remembers the largest single write.
    #[derive(Default)]
    struct Meter {
        bytes: usize,
        largest: usize,
    }

    impl Write for Meter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.bytes += buf.len();
            self.largest = self.largest.max(buf.len());
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn large_heaps_are_streamed_row_by_row() {
        let mut b = SnapshotBuilder::new();
        let module_type = b.type_named("module");
        let name = b.intern("big");
        let module = b.add_node(0x1000, module_type, 72, 0, 1, name, 0);
        let list = b.node("list", 8_000_056);
        b.edge_named(module, list, LabelKind::Attr, "ITEMS");
        for k in 0..200_000u32 {
            let item = b.node("big.Item", 48);
            b.edge(list, item, LabelKind::Index, k);
        }
        b.root(RootKind::Module, module, "big", 0);
        let snapshot = b.finish();
        let mut meter = Meter::default();
        let stats = write_heapsnapshot(&snapshot, &mut meter).expect("export");
        assert_eq!(stats.nodes, (N_SYNTHETIC + 200_002) as u64);
        assert!(meter.bytes > 200_000 * 20);
        // No write bigger than the header: the JSON is never assembled in memory.
        assert!(meter.largest < 4096, "largest write {}", meter.largest);
    }

    #[test]
    fn export_file_replaces_atomically() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.heapsnapshot");
        std::fs::write(&path, b"old").expect("seed");
        let stats = export_file(&leak(), &path).expect("export");
        assert_eq!(stats.nodes, (N_SYNTHETIC + 7) as u64);
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.starts_with("{\"snapshot\":"));
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 1);
        assert!(export_file(&leak(), &dir.path().join("missing/x.heapsnapshot")).is_err());
    }
}
