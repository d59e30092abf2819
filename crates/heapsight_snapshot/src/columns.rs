//! Encoding of each section's payload, writer and reader side by side so that the two
//! cannot drift apart. docs/snapshot-format.md describes the same rules in prose.

use std::io;

use crate::encode::ColumnSink;
use crate::error::FormatError;
use crate::keys::{KeyIndex, KeyedRoot, LocalNames};
use crate::layout::{Section, BOUNDS_SECTION_ID};
use crate::model::{
    Bound, LabelKind, Metadata, NodeIdx, Root, RootKind, StrId, StringTable, TypeIdx, Types,
};
use crate::varint::{put_varint, unzigzag, zigzag, ByteReader, ReadError};
use crate::Snapshot;

/// How many of each thing the file holds; stored in the metadata section so that the
/// reader knows every column's length before it decodes it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnapshotCounts {
    pub n_strings: u64,
    pub n_types: u64,
    pub n_nodes: u64,
    pub n_edges: u64,
    pub n_roots: u64,
}

impl SnapshotCounts {
    pub fn of(snap: &Snapshot) -> SnapshotCounts {
        SnapshotCounts {
            n_strings: snap.strings.len() as u64,
            n_types: snap.types.len() as u64,
            n_nodes: snap.nodes.len() as u64,
            n_edges: snap.edges.len() as u64,
            n_roots: snap.roots.len() as u64,
        }
    }
}

/// Bits of an edge label code that hold the [`LabelKind`]; the value sits above them.
const LABEL_KIND_BITS: u32 = 3;

/// Refcounts are stored plus one (wrapping) so that immortals (`u32::MAX`) take one byte.
pub fn refcount_code(refcount: u32) -> u64 {
    u64::from(refcount.wrapping_add(1))
}

pub(crate) fn refcount_from_code(code: u32) -> u32 {
    code.wrapping_sub(1)
}

/// String ids in optional columns are stored plus one (wrapping) so that `NO_STR`
/// (`u32::MAX`) takes one byte.
pub fn str_id_code(id: StrId) -> u64 {
    u64::from(id.0.wrapping_add(1))
}

pub(crate) fn str_id_from_code(code: u32) -> StrId {
    StrId(code.wrapping_sub(1))
}

/// An edge label as one varint: `value << 3 | kind`. Unlabelled edges cost one byte.
pub fn label_code(kind: LabelKind, value: u32) -> u64 {
    (u64::from(value) << LABEL_KIND_BITS) | kind as u64
}

/// The label a [`label_code`] stands for; `None` for a code no label has.
pub(crate) fn label_of_code(code: u64) -> Option<(LabelKind, u32)> {
    let kind = LabelKind::from_u8((code & ((1 << LABEL_KIND_BITS) - 1)) as u8)?;
    let value = u32::try_from(code >> LABEL_KIND_BITS).ok()?;
    Some((kind, value))
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

pub fn encode_metadata(counts: SnapshotCounts, m: &Metadata) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    for count in [
        counts.n_strings,
        counts.n_types,
        counts.n_nodes,
        counts.n_edges,
        counts.n_roots,
    ] {
        put_varint(&mut out, count);
    }
    put_varint(&mut out, u64::from(m.pid));
    put_str(&mut out, &m.python_version);
    put_str(&mut out, &m.executable);
    put_varint(&mut out, m.argv.len() as u64);
    for arg in &m.argv {
        put_str(&mut out, arg);
    }
    put_varint(&mut out, m.time_unix_ms);
    put_varint(&mut out, m.rss_bytes);
    put_varint(&mut out, m.n_gc_tracked);
    put_varint(&mut out, m.n_frozen);
    out.push(u8::from(m.include_values));
    put_str(&mut out, &m.heapsight_version);
    put_varint(&mut out, m.walk_ms);
    out
}

/// Count, then every string's byte length, then all bytes: lengths and text compress
/// better apart than interleaved.
pub fn encode_strings(strings: &StringTable, sink: &mut ColumnSink<'_>) -> io::Result<()> {
    sink.varint(strings.len() as u64)?;
    sink.varints(strings.strings.iter().map(|s| s.len() as u64))?;
    for s in &strings.strings {
        sink.bytes(s.as_bytes())?;
    }
    Ok(())
}

pub fn encode_types(types: &Types, sink: &mut ColumnSink<'_>) -> io::Result<()> {
    encode_addresses(&types.address, sink)?;
    sink.varints(types.name.iter().map(|n| u64::from(n.0)))
}

/// Addresses share their alignment: the common trailing zero bits are dropped (one byte
/// says how many), then each address is stored as the zigzag delta from the previous one.
pub fn encode_addresses(addresses: &[u64], sink: &mut ColumnSink<'_>) -> io::Result<()> {
    let all_bits = addresses.iter().fold(0u64, |acc, a| acc | a);
    let shift = if all_bits == 0 {
        0
    } else {
        all_bits.trailing_zeros()
    };
    sink.byte(shift as u8)?;
    let mut previous = 0u64;
    for address in addresses {
        let scaled = address >> shift;
        sink.varint(zigzag(scaled.wrapping_sub(previous) as i64))?;
        previous = scaled;
    }
    Ok(())
}

/// Edge positions per type remembered by [`TargetBases`]; later positions fall back to
/// the source node as base.
const HISTORY_POSITIONS: usize = 8;

/// Types remembered by [`TargetBases`] (indices below this): bounds its table to 16 MiB
/// however many types a (possibly forged) file declares. Real heaps have far fewer.
const HISTORY_TYPES: usize = 1 << 18;

/// A history entry with no target seen yet.
const NO_TARGET: u64 = u64::MAX;

/// Number of bases a target can be stored against (the selector's 2 bits).
const TARGET_BASES: u64 = 4;

/// From version 2, the predictions start afresh at every node whose index within its run
/// is a multiple of this (version 3 adds the first node of every run; versions 1 and 2
/// have one run): a writer may encode the column in parts side by side, without
/// replaying what came before.
pub(crate) const TARGET_STATE_NODES: usize = 1 << 16;

/// The four predictions a target is stored against, all in the space the targets are
/// stored in (node keys from version 2, node indices in version 1). Each edge target is
/// written as `zigzag(target - base) << 2 | selector`, and the writer picks the closest
/// base:
/// - 0: the source node (objects reference objects allocated near them);
/// - 1: the previous target of the same node (the source itself for its first edge);
/// - 2: the previous target in the whole column (runs of leaves in address order);
/// - 3: the target at the same position (below 8) in the last earlier node of the same
///   type (types below 2^18), else the source: an instance's class, the interned keys of
///   same-shaped dicts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct TargetBases {
    last_target: u64,
    /// `HISTORY_POSITIONS` targets per remembered type, grown to the largest type seen
    /// (at most `HISTORY_TYPES`, 16 MiB, whatever a file declares).
    history: Vec<u64>,
}

impl TargetBases {
    /// Where the history of nodes of type `type_idx` starts (grown to hold it), or
    /// `None` for a type beyond those remembered.
    #[inline]
    fn type_history(&mut self, type_idx: u32) -> Option<usize> {
        let type_idx = type_idx as usize;
        if type_idx >= HISTORY_TYPES {
            return None;
        }
        let first = type_idx * HISTORY_POSITIONS;
        if first >= self.history.len() {
            self.remember_type(first);
        }
        Some(first)
    }

    /// Grows the history to hold the type whose history starts at `first`.
    #[cold]
    fn remember_type(&mut self, first: usize) {
        self.history.resize(first + HISTORY_POSITIONS, NO_TARGET);
    }

    /// Base 3 of edge `position` of a node whose type's history is `history`: the target
    /// at that position in the last node of the type, else the source.
    #[inline]
    fn remembered(&self, history: Option<usize>, position: usize, source: u64) -> u64 {
        match history {
            Some(first) if position < HISTORY_POSITIONS => match self.history[first + position] {
                NO_TARGET => source,
                seen => seen,
            },
            _ => source,
        }
    }

    #[inline]
    fn record(&mut self, history: Option<usize>, position: usize, target: u64) {
        self.last_target = target;
        if let Some(first) = history.filter(|_| position < HISTORY_POSITIONS) {
            self.history[first + position] = target;
        }
    }

    fn reset(&mut self) {
        self.last_target = 0;
        self.history.fill(NO_TARGET);
    }
}

/// The delta of `target` from `base`, as stored (wrapping, so any two keys have one).
#[inline]
fn delta_code(target: u64, base: u64) -> u64 {
    zigzag(target.wrapping_sub(base) as i64)
}

/// Encodes the edge targets of one run of nodes, a node at a time, in node order: the
/// capture runs one per walking thread, as it goes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TargetEncoder {
    bases: TargetBases,
    /// Nodes of the run so far.
    nodes: usize,
}

impl TargetEncoder {
    /// Hands `put` the code of each of the next node's targets, in order.
    #[inline]
    pub fn node<E>(
        &mut self,
        source: u64,
        type_idx: u32,
        targets: impl IntoIterator<Item = u64>,
        mut put: impl FnMut(u64) -> Result<(), E>,
    ) -> Result<(), E> {
        if self.nodes.is_multiple_of(TARGET_STATE_NODES) {
            self.bases.reset();
        }
        self.nodes += 1;
        let bases = &mut self.bases;
        let history = bases.type_history(type_idx);
        let mut previous = source;
        for (position, target) in targets.into_iter().enumerate() {
            let remembered = bases.remembered(history, position, source);
            // `delta × 4 + selector` for each base: the smallest is the smallest delta,
            // ties going to the lowest selector. Deltas of keys stay far below 2^62.
            let code = (delta_code(target, source) * TARGET_BASES)
                .min(delta_code(target, previous) * TARGET_BASES + 1)
                .min(delta_code(target, bases.last_target) * TARGET_BASES + 2)
                .min(delta_code(target, remembered) * TARGET_BASES + 3);
            put(code)?;
            bases.record(history, position, target);
            previous = target;
        }
        Ok(())
    }
}

/// The edge targets of a snapshot held in memory: one run, node indices as keys.
pub(crate) fn encode_index_targets(
    offsets: &[u64],
    node_types: &[TypeIdx],
    targets: &[NodeIdx],
    sink: &mut ColumnSink<'_>,
) -> io::Result<()> {
    let mut encoder = TargetEncoder::default();
    for (source, (range, type_idx)) in offsets.windows(2).zip(node_types).enumerate() {
        let node_targets = targets
            .get(range[0] as usize..range[1] as usize)
            .unwrap_or_default();
        encoder.node(
            source as u64,
            type_idx.0,
            node_targets.iter().map(|t| u64::from(t.0)),
            |code| sink.varint(code),
        )?;
    }
    Ok(())
}

/// Node runs: each run's node count, none zero. Versions 1 and 2 have no such section:
/// their nodes are one run.
pub fn encode_runs(runs: &[u64], sink: &mut ColumnSink<'_>) -> io::Result<()> {
    sink.varint(runs.len() as u64)?;
    sink.varints(runs.iter().copied())
}

pub fn decode_runs(payload: &[u8], n_nodes: u64) -> Result<Vec<u64>, FormatError> {
    let mut r = PayloadReader::new(Section::NodeRuns, payload);
    let count = r.varint()?;
    if count > n_nodes {
        return Err(r.corrupt(format!(
            "{count} node runs for {n_nodes} nodes (a run holds at least one)"
        )));
    }
    let count = r.fits(count, 1, "node runs")?;
    let mut runs = Vec::with_capacity(count);
    let mut total = 0u64;
    for _ in 0..count {
        let run = r.varint()?;
        if run == 0 {
            return Err(r.corrupt("a node run is empty"));
        }
        total = total.saturating_add(run);
        runs.push(run);
    }
    r.finish()?;
    if total != n_nodes {
        return Err(FormatError::corrupt(
            Section::NodeRuns,
            format!("node runs add up to {total} nodes, metadata says {n_nodes}"),
        ));
    }
    Ok(runs)
}

/// The runs of a file without a node runs section (versions 1 and 2): all nodes in one.
pub(crate) fn single_run(n_nodes: u64) -> Vec<u64> {
    if n_nodes == 0 {
        Vec::new()
    } else {
        vec![n_nodes]
    }
}

/// Tells, node after node, where a run starts: there the delta chains of the addresses,
/// the node keys and the edge targets start afresh.
pub(crate) struct RunStarts<'a> {
    lengths: std::slice::Iter<'a, u64>,
    next_start: u64,
}

impl<'a> RunStarts<'a> {
    pub(crate) fn new(runs: &'a [u64]) -> Self {
        RunStarts {
            lengths: runs.iter(),
            next_start: 0,
        }
    }

    /// Whether node `node` starts a run; nodes must be asked about in order.
    #[inline]
    pub(crate) fn starts_at(&mut self, node: u64) -> bool {
        if node != self.next_start {
            return false;
        }
        self.next_start = match self.lengths.next() {
            Some(&len) => node.saturating_add(len),
            None => u64::MAX,
        };
        true
    }
}

/// The code of a node key: the zigzag delta from the previous key of its run (the first
/// from 0).
#[inline]
pub fn node_key_code(key: u64, previous: u64) -> u64 {
    delta_code(key, previous)
}

/// Node keys of a snapshot held in memory: one run, the node indices.
pub(crate) fn encode_index_keys(n_nodes: usize, sink: &mut ColumnSink<'_>) -> io::Result<()> {
    (0..n_nodes as u64).try_for_each(|key| sink.varint(node_key_code(key, key.saturating_sub(1))))
}

pub fn decode_node_keys(
    payload: &[u8],
    n_nodes: u64,
    runs: &[u64],
) -> Result<Vec<u64>, FormatError> {
    let mut r = PayloadReader::new(Section::NodeKeys, payload);
    let count = r.fits(n_nodes, 1, "node keys")?;
    let mut keys = Vec::with_capacity(count);
    let mut previous = 0u64;
    let mut starts = RunStarts::new(runs);
    for node in 0..count as u64 {
        if starts.starts_at(node) {
            previous = 0;
        }
        previous = previous.wrapping_add(unzigzag(r.varint()?) as u64);
        keys.push(previous);
    }
    r.finish()?;
    Ok(keys)
}

/// How a file's edge targets name nodes.
pub enum TargetSpace<'a> {
    /// Version 1: by node index (below the count).
    Indices(u64),
    /// By key: node `i`'s key is `keys[i]`.
    Keys {
        keys: &'a [u64],
        index: &'a KeyIndex,
    },
}

impl TargetSpace<'_> {
    #[inline]
    pub(crate) fn key_of(&self, node: usize) -> u64 {
        match self {
            TargetSpace::Indices(_) => node as u64,
            TargetSpace::Keys { keys, .. } => keys.get(node).copied().unwrap_or_default(),
        }
    }

    #[inline]
    pub(crate) fn node(&self, key: u64) -> Option<NodeIdx> {
        match self {
            // Below n_nodes, itself below u32::MAX (checked with the metadata).
            TargetSpace::Indices(n) => (key < *n).then_some(NodeIdx(key as u32)),
            TargetSpace::Keys { index, .. } => index.node(key),
        }
    }
}

pub fn decode_targets(
    payload: &[u8],
    offsets: &[u64],
    node_types: &[TypeIdx],
    n_types: usize,
    runs: &[u64],
    space: &TargetSpace<'_>,
) -> Result<Vec<NodeIdx>, FormatError> {
    // Version 1 (node indices) predates the fresh starts within a run.
    let resets = matches!(space, TargetSpace::Keys { .. });
    let mut r = PayloadReader::new(Section::EdgeTargets, payload);
    // The offsets of a part of the nodes start where the part's first edge does.
    let n_edges = match (offsets.first(), offsets.last()) {
        (Some(first), Some(last)) => last.saturating_sub(*first),
        _ => 0,
    };
    let count = r.fits(n_edges, 1, "edge targets")?;
    let mut targets = Vec::with_capacity(count);
    let mut bases = TargetBases::default();
    let mut starts = RunStarts::new(runs);
    let mut run_start = 0usize;
    for (source, range) in offsets.windows(2).enumerate() {
        let type_idx = match node_types.get(source) {
            Some(t) if t.index() < n_types => t.0,
            _ => return Err(r.corrupt(format!("node {source} has no valid type"))),
        };
        if starts.starts_at(source as u64) {
            run_start = source;
            bases.reset();
        } else if resets && (source - run_start).is_multiple_of(TARGET_STATE_NODES) {
            bases.reset();
        }
        let source_key = space.key_of(source);
        let history = bases.type_history(type_idx);
        let mut previous = source_key;
        for position in 0..(range[1] - range[0]) as usize {
            let code = r.varint()?;
            let base = match code % TARGET_BASES {
                0 => source_key,
                1 => previous,
                2 => bases.last_target,
                _ => bases.remembered(history, position, source_key),
            };
            let target = base.wrapping_add(unzigzag(code / TARGET_BASES) as u64);
            let node = space.node(target).ok_or_else(|| {
                r.corrupt(format!(
                    "an edge of node {source} points to no node of the snapshot"
                ))
            })?;
            targets.push(node);
            bases.record(history, position, target);
            previous = target;
        }
    }
    r.finish()?;
    Ok(targets)
}

/// The roots as stored (by key from version 2), then whether the reader is to add the
/// external ones (a capture leaves counting references to the reader).
pub fn encode_roots(
    roots: &[KeyedRoot],
    derive_external: bool,
    sink: &mut ColumnSink<'_>,
) -> io::Result<()> {
    sink.varint(roots.len() as u64)?;
    for root in roots {
        sink.byte(root.kind as u8)?;
        sink.varint(root.key)?;
        sink.varint(str_id_code(root.name))?;
        sink.varint(root.extra)?;
    }
    sink.byte(u8::from(derive_external))
}

/// The name lists (each a length and string ids), then the holders: the zigzag delta of
/// each key from the previous one, and the index of its list.
pub fn encode_local_names(names: &LocalNames, sink: &mut ColumnSink<'_>) -> io::Result<()> {
    sink.varint(names.lists.len() as u64)?;
    for list in &names.lists {
        sink.varint(list.len() as u64)?;
        sink.varints(list.iter().map(|s| u64::from(s.0)))?;
    }
    sink.varint(names.holders.len() as u64)?;
    let mut previous = 0u64;
    for &(key, list) in &names.holders {
        sink.varint(delta_code(key, previous))?;
        previous = key;
        sink.varint(u64::from(list))?;
    }
    Ok(())
}

pub fn decode_local_names(payload: &[u8], n_strings: u64) -> Result<LocalNames, FormatError> {
    let mut r = PayloadReader::new(Section::LocalNames, payload);
    let n_lists = r.varint()?;
    let n_lists = r.fits(n_lists, 1, "name lists")?;
    let mut lists = Vec::with_capacity(n_lists);
    for _ in 0..n_lists {
        let len = r.varint()?;
        let len = r.fits(len, 1, "names")?;
        let mut list = Vec::with_capacity(len);
        for _ in 0..len {
            let id = r.varint_u32()?;
            if u64::from(id) >= n_strings {
                return Err(r.corrupt(format!("name string {id} out of range")));
            }
            list.push(StrId(id));
        }
        lists.push(list);
    }
    let n_holders = r.varint()?;
    let n_holders = r.fits(n_holders, 2, "holders")?;
    let mut holders = Vec::with_capacity(n_holders);
    let mut key = 0u64;
    for i in 0..n_holders {
        let previous = key;
        key = key.wrapping_add(unzigzag(r.varint()?) as u64);
        // Ascending, so that no node's edges are renamed twice.
        if i > 0 && key <= previous {
            return Err(r.corrupt("holders are not in ascending key order"));
        }
        let list = r.varint_u32()?;
        if list as usize >= lists.len() {
            return Err(r.corrupt(format!("name list {list} out of range")));
        }
        holders.push((key, list));
    }
    r.finish()?;
    Ok(LocalNames { lists, holders })
}

/// Count, then per container: node delta from the previous one (nodes ascend) and the
/// capacity plus one, `0` standing for "explicitly unbounded".
pub fn encode_bounds(bounds: &[Bound], sink: &mut ColumnSink<'_>) -> io::Result<()> {
    sink.varint(bounds.len() as u64)?;
    let mut previous = 0u64;
    for bound in bounds {
        let node = u64::from(bound.node.0);
        sink.varint(node - previous)?;
        previous = node;
        sink.varint(bound.capacity.map_or(0, |c| c.saturating_add(1)))?;
    }
    Ok(())
}

// ---- reading ----

/// Decodes one section's payload, turning every reader failure into a `Corrupt` error
/// that names the section.
pub(crate) struct PayloadReader<'a> {
    reader: ByteReader<'a>,
    section: Section,
}

impl<'a> PayloadReader<'a> {
    pub fn new(section: Section, payload: &'a [u8]) -> Self {
        PayloadReader {
            reader: ByteReader::new(payload),
            section,
        }
    }

    fn fail(&self, e: ReadError) -> FormatError {
        FormatError::corrupt(self.section, e.to_string())
    }

    pub fn corrupt(&self, detail: impl Into<String>) -> FormatError {
        FormatError::corrupt(self.section, detail)
    }

    #[inline]
    pub fn varint(&mut self) -> Result<u64, FormatError> {
        self.reader.varint().map_err(|e| self.fail(e))
    }

    #[inline]
    pub fn varint_u32(&mut self) -> Result<u32, FormatError> {
        self.reader.varint_u32().map_err(|e| self.fail(e))
    }

    pub fn u8(&mut self) -> Result<u8, FormatError> {
        self.reader.u8().map_err(|e| self.fail(e))
    }

    pub fn take(&mut self, len: usize) -> Result<&'a [u8], FormatError> {
        self.reader.take(len).map_err(|e| self.fail(e))
    }

    /// A count that sizes a vector: every value takes at least `min_bytes_each` bytes, so
    /// a count beyond what the payload can hold is corrupt and allocates nothing.
    pub fn fits(
        &self,
        count: u64,
        min_bytes_each: usize,
        what: &str,
    ) -> Result<usize, FormatError> {
        let room = self.reader.remaining() / min_bytes_each.max(1);
        match usize::try_from(count) {
            Ok(count) if count <= room => Ok(count),
            _ => Err(self.corrupt(format!(
                "{count} {what} declared but only {} bytes remain",
                self.reader.remaining()
            ))),
        }
    }

    pub fn string(&mut self, what: &str) -> Result<String, FormatError> {
        let len = self.varint()?;
        let len = self.fits(len, 1, "string bytes")?;
        let bytes = self.take(len)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(e) => Err(self.corrupt(format!("{what} is not valid UTF-8: {e}"))),
        }
    }

    pub fn finish(self) -> Result<(), FormatError> {
        if self.reader.is_at_end() {
            Ok(())
        } else {
            Err(self.corrupt(format!(
                "{} unexpected bytes after the last value",
                self.reader.remaining()
            )))
        }
    }
}

pub fn decode_metadata(payload: &[u8]) -> Result<(Metadata, SnapshotCounts), FormatError> {
    let mut r = PayloadReader::new(Section::Metadata, payload);
    let counts = SnapshotCounts {
        n_strings: r.varint()?,
        n_types: r.varint()?,
        n_nodes: r.varint()?,
        n_edges: r.varint()?,
        n_roots: r.varint()?,
    };
    // Ids are u32 and NO_STR is u32::MAX, so no table may reach that size.
    for (count, what) in [
        (counts.n_strings, "strings"),
        (counts.n_types, "types"),
        (counts.n_nodes, "nodes"),
    ] {
        if count >= u64::from(u32::MAX) {
            return Err(r.corrupt(format!("{count} {what} exceed the 2^32 limit")));
        }
    }
    let pid = r.varint_u32()?;
    let python_version = r.string("python_version")?;
    let executable = r.string("executable")?;
    let argc = r.varint()?;
    let argc = r.fits(argc, 1, "arguments")?;
    let mut argv = Vec::with_capacity(argc);
    for _ in 0..argc {
        argv.push(r.string("an argv entry")?);
    }
    let time_unix_ms = r.varint()?;
    let rss_bytes = r.varint()?;
    let n_gc_tracked = r.varint()?;
    let n_frozen = r.varint()?;
    let include_values = match r.u8()? {
        0 => false,
        1 => true,
        other => return Err(r.corrupt(format!("include_values is {other}, expected 0 or 1"))),
    };
    let heapsight_version = r.string("heapsight_version")?;
    let walk_ms = r.varint()?;
    r.finish()?;
    let metadata = Metadata {
        pid,
        python_version,
        executable,
        argv,
        time_unix_ms,
        rss_bytes,
        n_gc_tracked,
        n_frozen,
        include_values,
        heapsight_version,
        walk_ms,
    };
    Ok((metadata, counts))
}

pub fn decode_strings(payload: &[u8], expected: u64) -> Result<StringTable, FormatError> {
    let mut r = PayloadReader::new(Section::Strings, payload);
    let count = r.varint()?;
    if count != expected {
        return Err(r.corrupt(format!("holds {count} strings, metadata says {expected}")));
    }
    let count = r.fits(count, 1, "string lengths")?;
    let mut lengths = Vec::with_capacity(count);
    let mut total = 0usize;
    for _ in 0..count {
        let len = r.varint()?;
        let len = r.fits(len, 1, "string bytes")?;
        total = total.saturating_add(len);
        lengths.push(len);
    }
    let bytes = r.take(total)?;
    r.finish()?;
    // One UTF-8 check over all the text, then each cut must fall on a character boundary:
    // cheaper than checking every string on its own.
    let text = std::str::from_utf8(bytes).map_err(|e| {
        FormatError::corrupt(Section::Strings, format!("text is not valid UTF-8: {e}"))
    })?;
    let mut strings = Vec::with_capacity(count);
    let mut start = 0usize;
    for (i, len) in lengths.into_iter().enumerate() {
        let end = start + len;
        let s = text.get(start..end).ok_or_else(|| {
            FormatError::corrupt(
                Section::Strings,
                format!("string {i} splits a UTF-8 character"),
            )
        })?;
        strings.push(s.to_owned());
        start = end;
    }
    Ok(StringTable { strings })
}

pub fn decode_types(payload: &[u8], expected: u64) -> Result<Types, FormatError> {
    let mut r = PayloadReader::new(Section::Types, payload);
    let address = decode_address_values(&mut r, expected, &single_run(expected))?;
    let count = r.fits(expected, 1, "type names")?;
    let mut name = Vec::with_capacity(count);
    for _ in 0..count {
        name.push(StrId(r.varint_u32()?));
    }
    r.finish()?;
    Ok(Types { address, name })
}

pub fn decode_addresses(
    payload: &[u8],
    n_nodes: u64,
    runs: &[u64],
) -> Result<Vec<u64>, FormatError> {
    let mut r = PayloadReader::new(Section::NodeAddress, payload);
    let addresses = decode_address_values(&mut r, n_nodes, runs)?;
    r.finish()?;
    Ok(addresses)
}

/// A shift byte, then the deltas: from 0 at the start of each run.
fn decode_address_values(
    r: &mut PayloadReader<'_>,
    count: u64,
    runs: &[u64],
) -> Result<Vec<u64>, FormatError> {
    let shift = r.u8()?;
    if shift > 63 {
        return Err(r.corrupt(format!("address shift {shift} is over 63")));
    }
    let count = r.fits(count, 1, "addresses")?;
    let mut out = Vec::with_capacity(count);
    let mut previous = 0u64;
    let mut starts = RunStarts::new(runs);
    for node in 0..count as u64 {
        if starts.starts_at(node) {
            previous = 0;
        }
        let scaled = previous.wrapping_add(unzigzag(r.varint()?) as u64);
        let address = scaled << shift;
        if address >> shift != scaled {
            return Err(r.corrupt("an address overflows 64 bits"));
        }
        out.push(address);
        previous = scaled;
    }
    Ok(out)
}

/// A column of one varint per node, each mapped (and range-checked) by `convert`.
pub fn decode_varint_column<T>(
    section: Section,
    payload: &[u8],
    count: u64,
    mut convert: impl FnMut(u64) -> Option<T>,
) -> Result<Vec<T>, FormatError> {
    let mut r = PayloadReader::new(section, payload);
    let count = r.fits(count, 1, "values")?;
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let raw = r.varint()?;
        match convert(raw) {
            Some(value) => out.push(value),
            None => return Err(r.corrupt(format!("value {raw} at position {i} is out of range"))),
        }
    }
    r.finish()?;
    Ok(out)
}

pub fn decode_node_types(payload: &[u8], n_nodes: u64) -> Result<Vec<TypeIdx>, FormatError> {
    decode_varint_column(Section::NodeType, payload, n_nodes, |raw| {
        u32::try_from(raw).ok().map(TypeIdx)
    })
}

pub fn decode_sizes(payload: &[u8], n_nodes: u64) -> Result<Vec<u64>, FormatError> {
    decode_varint_column(Section::NodeSize, payload, n_nodes, Some)
}

pub fn decode_lengths(payload: &[u8], n_nodes: u64) -> Result<Vec<u64>, FormatError> {
    decode_varint_column(Section::NodeLength, payload, n_nodes, Some)
}

pub fn decode_refcounts(payload: &[u8], n_nodes: u64) -> Result<Vec<u32>, FormatError> {
    decode_varint_column(Section::NodeRefcount, payload, n_nodes, |raw| {
        u32::try_from(raw).ok().map(refcount_from_code)
    })
}

pub fn decode_names(payload: &[u8], n_nodes: u64) -> Result<Vec<StrId>, FormatError> {
    decode_varint_column(Section::NodeName, payload, n_nodes, |raw| {
        u32::try_from(raw).ok().map(str_id_from_code)
    })
}

pub fn decode_flags(payload: &[u8], n_nodes: u64) -> Result<Vec<u8>, FormatError> {
    if payload.len() as u64 != n_nodes {
        return Err(FormatError::corrupt(
            Section::NodeFlags,
            format!("{} flag bytes for {n_nodes} nodes", payload.len()),
        ));
    }
    Ok(payload.to_vec())
}

/// Degrees become CSR offsets; their sum must be the edge count from the metadata.
pub fn decode_offsets(payload: &[u8], n_nodes: u64, n_edges: u64) -> Result<Vec<u64>, FormatError> {
    let mut r = PayloadReader::new(Section::EdgeDegrees, payload);
    let count = r.fits(n_nodes, 1, "edge counts")?;
    let mut offsets = Vec::with_capacity(count + 1);
    let mut total = 0u64;
    offsets.push(0);
    for _ in 0..count {
        total = total
            .checked_add(r.varint()?)
            .filter(|t| *t <= n_edges)
            .ok_or_else(|| r.corrupt(format!("edge counts add up to more than {n_edges}")))?;
        offsets.push(total);
    }
    r.finish()?;
    if total != n_edges {
        return Err(FormatError::corrupt(
            Section::EdgeDegrees,
            format!("edge counts add up to {total}, metadata says {n_edges}"),
        ));
    }
    Ok(offsets)
}

pub fn decode_labels(
    payload: &[u8],
    n_edges: u64,
) -> Result<(Vec<LabelKind>, Vec<u32>), FormatError> {
    let mut r = PayloadReader::new(Section::EdgeLabels, payload);
    let count = r.fits(n_edges, 1, "edge labels")?;
    let mut kinds = Vec::with_capacity(count);
    let mut values = Vec::with_capacity(count);
    for i in 0..count {
        let code = r.varint()?;
        match label_of_code(code) {
            Some((kind, value)) => {
                kinds.push(kind);
                values.push(value);
            }
            None => return Err(r.corrupt(format!("label code {code} of edge {i} is invalid"))),
        }
    }
    r.finish()?;
    Ok((kinds, values))
}

pub fn decode_bounds(payload: &[u8], n_nodes: u64) -> Result<Vec<Bound>, FormatError> {
    let mut r = PayloadReader::new(Section::Optional(BOUNDS_SECTION_ID), payload);
    let count = r.varint()?;
    // two varints of at least one byte each
    let count = r.fits(count, 2, "bounded containers")?;
    let mut bounds = Vec::with_capacity(count);
    let mut node = 0u64;
    for i in 0..count {
        let delta = r.varint()?;
        if i > 0 && delta == 0 {
            return Err(r.corrupt("a container is listed twice".to_owned()));
        }
        node = node.saturating_add(delta);
        if node >= n_nodes {
            return Err(r.corrupt(format!("container {node} out of range ({n_nodes} nodes)")));
        }
        let code = r.varint()?;
        bounds.push(Bound {
            node: NodeIdx(node as u32),
            capacity: code.checked_sub(1),
        });
    }
    r.finish()?;
    Ok(bounds)
}

/// The stored roots, and whether the external ones are to be derived (never in
/// version 1, which stores them all).
pub fn decode_roots(
    payload: &[u8],
    expected: u64,
    version: u32,
    space: &TargetSpace<'_>,
) -> Result<(Vec<Root>, bool), FormatError> {
    let mut r = PayloadReader::new(Section::Roots, payload);
    let count = r.varint()?;
    if count != expected {
        return Err(r.corrupt(format!("holds {count} roots, metadata says {expected}")));
    }
    // kind byte + three varints of at least one byte each
    let count = r.fits(count, 4, "roots")?;
    let mut roots = Vec::with_capacity(count);
    for _ in 0..count {
        let raw_kind = r.u8()?;
        let kind = RootKind::from_u8(raw_kind)
            .ok_or_else(|| r.corrupt(format!("unknown root kind {raw_kind}")))?;
        let key = r.varint()?;
        let node = space
            .node(key)
            .ok_or_else(|| r.corrupt(format!("a {kind:?} root names no node")))?;
        let name = str_id_from_code(r.varint_u32()?);
        let extra = r.varint()?;
        roots.push(Root {
            kind,
            node,
            name,
            extra,
        });
    }
    let derive_external = version >= 2
        && match r.u8()? {
            0 => false,
            1 => true,
            other => {
                return Err(r.corrupt(format!("external roots flag is {other}, expected 0 or 1")))
            }
        };
    r.finish()?;
    Ok((roots, derive_external))
}
