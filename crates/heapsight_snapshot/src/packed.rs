//! A snapshot held as the file's own section payloads, for the capture.
//!
//! The capture appends each node's columns and each edge's target and label as it goes,
//! already encoded the way the file stores them (varints, deltas, predicted targets), one
//! run of nodes per walking thread. That keeps a node at about a dozen bytes until the
//! file is written, where a [`Snapshot`] needs over sixty, and makes writing a matter of
//! compressing bytes that already exist: each run's bytes follow the previous run's, as
//! the file's node runs say. [`PackedSnapshot::into_snapshot`] turns the payloads into a
//! `Snapshot` with the reader's own decoders.

use std::borrow::Cow;
use std::convert::Infallible;
use std::io;

use crate::columns::{self, SnapshotCounts, TargetEncoder, TargetSpace};
use crate::decode::{index_keys, resolve_holders};
use crate::encode::ColumnSink;
use crate::error::FormatError;
use crate::keys::{external_roots, KeyedRoot, LocalNames};
use crate::layout::Section;
use crate::model::{
    node_flags, Bound, Edges, LabelKind, Metadata, NodeIdx, Nodes, Root, Snapshot, StrId,
    StringTable, TypeIdx, Types, NO_STR,
};
use crate::parallel;
use crate::varint::{put_varint, zigzag};

/// Addresses are stored shifted by this many bits: every Python object is 8-aligned, and
/// the shift is fixed before the first address is known (the in-memory writer picks the
/// widest shift all addresses share, so the two files may differ by that choice alone).
const ADDRESS_SHIFT: u32 = 3;

/// Varints appended one at a time: a column's section payload as it grows.
#[derive(Clone, Debug, Default)]
pub struct PackedColumn {
    bytes: Vec<u8>,
    len: u64,
    /// The largest value ever stored with [`PackedColumn::push_bounded`] or a patch: an
    /// upper bound of those values (one replaced by a smaller one stays counted), so that
    /// range checks before writing need not decode the column.
    max: u64,
}

/// Columns holding the same values are equal, whatever values they held before.
impl PartialEq for PackedColumn {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.bytes == other.bytes
    }
}

impl Eq for PackedColumn {}

impl PackedColumn {
    #[inline]
    pub fn push(&mut self, value: u64) {
        put_varint(&mut self.bytes, value);
        self.len += 1;
    }

    /// [`PackedColumn::push`], keeping the upper bound of the values (a compare and a
    /// store per value, paid only by the columns whose range is checked).
    #[inline]
    pub fn push_bounded(&mut self, value: u64) {
        self.push(value);
        self.max = self.max.max(value);
    }

    /// No value pushed with [`PackedColumn::push_bounded`] is above this (see the field).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Values held.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The encoded bytes: the section payload.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Reserves room for `additional` more bytes; a refused reservation only means the
    /// column grows as it goes.
    pub fn try_reserve_bytes(&mut self, additional: usize) {
        let _ = self.bytes.try_reserve_exact(additional);
    }

    pub fn shrink_to_fit(&mut self) {
        self.bytes.shrink_to_fit();
    }

    /// The values in order.
    pub fn values(&self) -> PackedValues<'_> {
        PackedValues {
            bytes: &self.bytes,
            offset: 0,
        }
    }

    /// The same column with the value at each listed position (the n-th value) replaced;
    /// `patches` sorted by position. Positions past the end are ignored.
    pub fn patched(self, patches: &[(u64, u64)]) -> PackedColumn {
        let mut at_offsets = Vec::with_capacity(patches.len());
        let mut values = self.values();
        let mut position = 0u64;
        for &(at, value) in patches {
            if at < position {
                continue; // a repeated position: the first patch stands
            }
            values.skip_values(at - position);
            let offset = values.offset();
            if values.next().is_none() {
                break;
            }
            at_offsets.push((offset, value));
            position = at + 1;
        }
        self.spliced(&at_offsets)
    }

    /// The same column with the value starting at each listed byte offset replaced;
    /// `patches` sorted by offset, each the start of a value. The bytes between patches
    /// are copied as they are.
    fn spliced(self, patches: &[(usize, u64)]) -> PackedColumn {
        if patches.is_empty() {
            return self;
        }
        let mut bytes = Vec::with_capacity(self.bytes.len() + patches.len() * 4);
        let mut copied = 0usize;
        for &(offset, value) in patches {
            if offset < copied || offset >= self.bytes.len() {
                continue;
            }
            let mut old = PackedValues {
                bytes: &self.bytes,
                offset,
            };
            if old.next().is_none() {
                continue;
            }
            bytes.extend_from_slice(&self.bytes[copied..offset]);
            put_varint(&mut bytes, value);
            copied = old.offset;
        }
        bytes.extend_from_slice(&self.bytes[copied..]);
        let patched_max = patches.iter().map(|&(_, value)| value).max();
        PackedColumn {
            bytes,
            len: self.len,
            max: self.max.max(patched_max.unwrap_or(0)),
        }
    }
}

/// Iterates over a [`PackedColumn`]. Its bytes were written by `push`, so they always
/// decode; the iteration ends at the first byte that does not rather than panic.
pub struct PackedValues<'a> {
    bytes: &'a [u8],
    offset: usize,
}

/// The high bit of each byte of a word: set on every varint byte but a value's last.
const CONTINUATION_BITS: u64 = 0x8080_8080_8080_8080;

impl PackedValues<'_> {
    /// Byte offset of the next value.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The next eight bytes as a little-endian word, if there are eight.
    #[inline]
    fn word(&self) -> Option<u64> {
        let bytes = self.bytes.get(self.offset..self.offset + 8)?;
        Some(u64::from_le_bytes(bytes.try_into().ok()?))
    }

    /// Skips `count` values without decoding them, eight bytes at a time where it can:
    /// a value ends at each byte whose high bit is clear. After the walk, columns are
    /// patched at a few nodes far apart, and skipping to them decoding every value took
    /// most of the time.
    pub fn skip_values(&mut self, mut count: u64) {
        while count >= 8 {
            let Some(word) = self.word() else { break };
            let ends = u64::from((!word & CONTINUATION_BITS).count_ones());
            if ends > count {
                break;
            }
            // Every value ending in these bytes is skipped; one that runs on past them
            // is finished by the next word (or the scalar loop).
            self.offset += 8;
            count -= ends;
        }
        for _ in 0..count {
            if self.next().is_none() {
                return;
            }
        }
    }

    /// The sum of the next `count` values (wrapping), eight one-byte values at a time
    /// where it can.
    pub fn sum_of_next(&mut self, mut count: u64) -> u64 {
        let mut sum = 0u64;
        while count >= 8 {
            let Some(word) = self.word() else { break };
            if word & CONTINUATION_BITS != 0 {
                // A value of two bytes or more among these: one value the slow way.
                let Some(value) = self.next() else { return sum };
                sum = sum.wrapping_add(value);
                count -= 1;
                continue;
            }
            // Eight values below 128: added in 16-bit lanes (at most 8 x 127 each).
            const LOW_BYTES: u64 = 0x00ff_00ff_00ff_00ff;
            let pairs = (word & LOW_BYTES) + ((word >> 8) & LOW_BYTES);
            sum = sum.wrapping_add(pairs.wrapping_mul(0x0001_0001_0001_0001) >> 48);
            self.offset += 8;
            count -= 8;
        }
        for _ in 0..count {
            let Some(value) = self.next() else { break };
            sum = sum.wrapping_add(value);
        }
        sum
    }
}

impl Iterator for PackedValues<'_> {
    type Item = u64;

    #[inline]
    fn next(&mut self) -> Option<u64> {
        // Most values are below 128: one byte, one branch.
        let first = *self.bytes.get(self.offset)?;
        self.offset += 1;
        if first < 0x80 {
            return Some(u64::from(first));
        }
        let mut value = u64::from(first & 0x7f);
        let mut shift = 7;
        loop {
            let byte = *self.bytes.get(self.offset)?;
            self.offset += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Some(value);
            }
            shift += 7;
            if shift > 63 {
                return None;
            }
        }
    }
}

/// Node addresses as the address section stores them: a shift byte, then zigzag deltas.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressColumn {
    column: PackedColumn,
    previous: u64,
    /// An address that the shift would have cut: the column is unusable (never happens
    /// with Python objects; refused when written rather than stored wrong).
    misaligned: bool,
}

impl Default for AddressColumn {
    fn default() -> Self {
        AddressColumn {
            column: PackedColumn {
                bytes: vec![ADDRESS_SHIFT as u8],
                len: 0,
                max: 0,
            },
            previous: 0,
            misaligned: false,
        }
    }
}

impl AddressColumn {
    #[inline]
    pub fn push(&mut self, address: u64) {
        self.misaligned |= address & ((1 << ADDRESS_SHIFT) - 1) != 0;
        let scaled = address >> ADDRESS_SHIFT;
        self.column
            .push(zigzag(scaled.wrapping_sub(self.previous) as i64));
        self.previous = scaled;
    }

    pub fn len(&self) -> u64 {
        self.column.len
    }

    pub fn is_empty(&self) -> bool {
        self.column.is_empty()
    }

    /// The deltas without the shift byte: what a later run adds to the section.
    fn deltas(&self) -> &[u8] {
        self.column.bytes.get(1..).unwrap_or_default()
    }
}

/// One node's columns, appended once its edges are known.
#[derive(Clone, Copy, Debug)]
pub struct PackedNode {
    pub address: u64,
    /// What edges name the node by (see the node keys section).
    pub key: u64,
    pub type_idx: TypeIdx,
    pub size: u64,
    pub flags: u8,
    pub refcount: u32,
    pub name: StrId,
    pub length: u64,
}

/// One run of nodes: the per-node columns, the edge targets and labels, appended in node
/// order as one walking thread goes, each already as the file stores it. Delta chains
/// (addresses, keys, targets) start afresh with each run, so that threads need not wait
/// for each other.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PackedNodes {
    pub addresses: AddressColumn,
    pub type_idx: PackedColumn,
    pub size: PackedColumn,
    /// Plain bytes: the flags section stores one byte per node, and flags are patched in
    /// place after the walk (sizes that could not be taken).
    pub flags: Vec<u8>,
    pub refcount: PackedColumn,
    pub name: PackedColumn,
    pub length: PackedColumn,
    pub keys: PackedColumn,
    previous_key: u64,
    pub degrees: PackedColumn,
    /// Pushed with [`PackedNodes::push_label`] only, which keeps `string_labels_end`.
    pub labels: PackedColumn,
    pub targets: PackedColumn,
    target_encoder: TargetEncoder,
    /// One past the largest string id a label holds (0 when none does).
    string_labels_end: u64,
}

impl PackedNodes {
    /// Appends a node whose edges' labels were pushed since the previous node, with its
    /// edges' targets by key, in the same order.
    #[inline]
    pub fn push(&mut self, node: PackedNode, targets: &[u64]) {
        self.addresses.push(node.address);
        self.type_idx.push_bounded(u64::from(node.type_idx.0));
        self.size.push(node.size);
        self.flags.push(node.flags);
        self.refcount.push(columns::refcount_code(node.refcount));
        self.name.push_bounded(columns::str_id_code(node.name));
        self.length.push(node.length);
        self.keys
            .push(columns::node_key_code(node.key, self.previous_key));
        self.previous_key = node.key;
        self.degrees.push(targets.len() as u64);
        let column = &mut self.targets;
        let _: Result<(), Infallible> =
            self.target_encoder
                .node(node.key, node.type_idx.0, targets.iter().copied(), |code| {
                    column.push(code);
                    Ok(())
                });
    }

    #[inline]
    pub fn push_label(&mut self, kind: LabelKind, value: u32) {
        self.labels.push(columns::label_code(kind, value));
        let end = if kind.value_is_str() {
            u64::from(value) + 1
        } else {
            0
        };
        self.string_labels_end = self.string_labels_end.max(end);
    }

    /// One past the largest string id a label holds (0 when none does).
    pub(crate) fn string_labels_end(&self) -> u64 {
        self.string_labels_end
    }

    pub fn len(&self) -> usize {
        self.flags.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flags.is_empty()
    }

    pub fn n_edges(&self) -> u64 {
        self.labels.len()
    }

    /// The columns of one varint per node (addresses, which start with a shift byte,
    /// aside).
    fn per_node_columns(&mut self) -> [&mut PackedColumn; 7] {
        [
            &mut self.type_idx,
            &mut self.size,
            &mut self.refcount,
            &mut self.name,
            &mut self.length,
            &mut self.keys,
            &mut self.degrees,
        ]
    }

    /// Reserves about what `nodes` nodes and `edges` edges take (a guess: varints vary).
    pub fn try_reserve(&mut self, nodes: usize, edges: usize) {
        self.addresses.column.try_reserve_bytes(nodes * 3);
        for column in self.per_node_columns() {
            column.try_reserve_bytes(nodes * 2);
        }
        let _ = self.flags.try_reserve_exact(nodes);
        self.labels.try_reserve_bytes(edges * 3);
        self.targets.try_reserve_bytes(edges * 2);
    }

    /// Gives back the room reserved beyond what was used.
    pub fn shrink_to_fit(&mut self) {
        self.addresses.column.shrink_to_fit();
        for column in self.per_node_columns() {
            column.shrink_to_fit();
        }
        self.labels.shrink_to_fit();
        self.targets.shrink_to_fit();
        self.flags.shrink_to_fit();
    }

    /// Replaces the sizes of the listed nodes (sorted by node).
    pub fn patch_sizes(&mut self, sizes: &[(u64, u64)]) {
        self.size = std::mem::take(&mut self.size).patched(sizes);
    }

    /// The bytes this run adds to a per-node or per-edge section; `first` for the first
    /// run (the only one whose addresses bring the shift byte).
    fn payload(&self, section: Section, first: bool) -> &[u8] {
        match section {
            Section::NodeAddress if first => self.addresses.column.bytes(),
            Section::NodeAddress => self.addresses.deltas(),
            Section::NodeType => self.type_idx.bytes(),
            Section::NodeSize => self.size.bytes(),
            Section::NodeFlags => &self.flags,
            Section::NodeRefcount => self.refcount.bytes(),
            Section::NodeName => self.name.bytes(),
            Section::NodeLength => self.length.bytes(),
            Section::NodeKeys => self.keys.bytes(),
            Section::EdgeDegrees => self.degrees.bytes(),
            Section::EdgeTargets => self.targets.bytes(),
            Section::EdgeLabels => self.labels.bytes(),
            _ => &[],
        }
    }
}

/// Whether a section holds one value per node or per edge, which runs write in turn.
fn is_run_column(section: Section) -> bool {
    matches!(
        section,
        Section::NodeAddress
            | Section::NodeType
            | Section::NodeSize
            | Section::NodeFlags
            | Section::NodeRefcount
            | Section::NodeName
            | Section::NodeLength
            | Section::NodeKeys
            | Section::EdgeDegrees
            | Section::EdgeTargets
            | Section::EdgeLabels
    )
}

/// A whole snapshot in packed form: what the capture writes to a file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PackedSnapshot {
    pub metadata: Metadata,
    pub strings: StringTable,
    pub types: Types,
    /// The nodes, one run per walking thread: the snapshot's nodes are those of the
    /// first run, then the second's, and so on. Empty runs are left out of the file.
    pub runs: Vec<PackedNodes>,
    pub roots: Vec<KeyedRoot>,
    /// Whether the external roots are left out of `roots`, to be derived from the
    /// reference counts and the edges when the snapshot is read or unpacked.
    pub derive_external_roots: bool,
    /// Names given to edges of some nodes when the snapshot is read or unpacked.
    pub local_names: LocalNames,
    /// Sorted by node.
    pub bounds: Vec<Bound>,
}

impl PackedSnapshot {
    pub fn n_nodes(&self) -> usize {
        self.runs.iter().map(PackedNodes::len).sum()
    }

    pub fn n_edges(&self) -> usize {
        self.runs.iter().map(|r| r.n_edges() as usize).sum()
    }

    pub fn counts(&self) -> SnapshotCounts {
        SnapshotCounts {
            n_strings: self.strings.len() as u64,
            n_types: self.types.len() as u64,
            n_nodes: self.n_nodes() as u64,
            n_edges: self.n_edges() as u64,
            n_roots: self.roots.len() as u64,
        }
    }

    /// The runs the file holds: the non-empty ones.
    fn filled_runs(&self) -> impl Iterator<Item = &PackedNodes> {
        self.runs.iter().filter(|run| !run.is_empty())
    }

    /// The node runs section's counts.
    pub(crate) fn run_lengths(&self) -> Vec<u64> {
        self.filled_runs().map(|run| run.len() as u64).collect()
    }

    /// Replaces the sizes of the listed nodes (sorted by node, numbered across runs).
    pub fn patch_sizes(&mut self, sizes: &[(u64, u64)]) {
        let mut first_node = 0u64;
        let mut rest = sizes;
        for run in &mut self.runs {
            let end = first_node + run.len() as u64;
            let in_run = rest.partition_point(|&(node, _)| node < end);
            let (mine, later) = rest.split_at(in_run);
            if !mine.is_empty() {
                let local: Vec<(u64, u64)> = mine
                    .iter()
                    .map(|&(node, size)| (node - first_node, size))
                    .collect();
                run.patch_sizes(&local);
            }
            rest = later;
            first_node = end;
        }
    }

    /// A section's payload as the file stores it: the runs' parts end to end (borrowed
    /// when there is one run).
    fn joined(&self, section: Section) -> Cow<'_, [u8]> {
        let mut runs = self.filled_runs();
        let Some(first) = runs.next() else {
            return Cow::Owned(empty_run_payload(section));
        };
        let mut payload = Cow::Borrowed(first.payload(section, true));
        for run in runs {
            payload
                .to_mut()
                .extend_from_slice(run.payload(section, false));
        }
        payload
    }

    /// The same snapshot unpacked, through the file reader's decoders (which also
    /// validate it).
    pub fn into_snapshot(self) -> Result<Snapshot, FormatError> {
        let runs = self.run_lengths();
        let n = self.n_nodes() as u64;
        let n_edges = self.n_edges() as u64;
        let n_types = self.types.len();
        let this = &self;
        let invalid = |detail: &str| FormatError::InvalidSnapshot {
            detail: detail.into(),
        };
        // Unpacking is most of `capture_heap()` after the walk: two halves of about the
        // same work at a time, each on its own thread when a second one can be started.
        // First the columns, beside the numbering of the keys.
        let columns = || -> Result<_, FormatError> {
            Ok((
                columns::decode_addresses(&this.joined(Section::NodeAddress), n, &runs)?,
                columns::decode_sizes(&this.joined(Section::NodeSize), n)?,
                columns::decode_refcounts(&this.joined(Section::NodeRefcount), n)?,
                columns::decode_names(&this.joined(Section::NodeName), n)?,
                columns::decode_lengths(&this.joined(Section::NodeLength), n)?,
                columns::decode_flags(&this.joined(Section::NodeFlags), n)?,
                columns::decode_labels(&this.joined(Section::EdgeLabels), n_edges)?,
                columns::decode_node_types(&this.joined(Section::NodeType), n)?,
                columns::decode_offsets(&this.joined(Section::EdgeDegrees), n, n_edges)?,
            ))
        };
        let numbering = || -> Result<_, FormatError> {
            let keys = columns::decode_node_keys(&this.joined(Section::NodeKeys), n, &runs)?;
            let index = index_keys(&keys)?;
            Ok((keys, index))
        };
        let (columns, numbering) = parallel::join(columns, numbering);
        let (address, size, refcount, name, length, flags, labels, type_idx, offsets) = columns?;
        let (mut label_kinds, mut label_values) = labels;
        let (keys, index) = numbering?;
        // Then the edge targets, whose predictions start afresh with each run: the first
        // half of the runs beside the second.
        let filled: Vec<&PackedNodes> = self.filled_runs().collect();
        let run_targets = |range: std::ops::Range<usize>| -> Result<Vec<NodeIdx>, FormatError> {
            let mut first_node: usize = runs[..range.start].iter().sum::<u64>() as usize;
            let mut targets = Vec::new();
            for (run, &len) in filled[range.clone()].iter().zip(&runs[range]) {
                let nodes = first_node..first_node + len as usize;
                let space = TargetSpace::Keys {
                    keys: &keys[nodes.clone()],
                    index: &index,
                };
                targets.extend(
                    columns::decode_targets(
                        run.targets.bytes(),
                        &offsets[nodes.start..=nodes.end],
                        &type_idx[nodes.clone()],
                        n_types,
                        &[len],
                        &space,
                    )
                    .map_err(|e| invalid(&e.to_string()))?,
                );
                first_node = nodes.end;
            }
            Ok(targets)
        };
        let middle = filled.len() / 2;
        let (targets, later_targets) = parallel::join(
            || run_targets(0..middle),
            || run_targets(middle..filled.len()),
        );
        let mut targets = targets?;
        targets.extend(later_targets?);
        let space = TargetSpace::Keys {
            keys: &keys,
            index: &index,
        };
        let mut roots = self
            .roots
            .iter()
            .map(|r| {
                space.node(r.key).map(|node| Root {
                    kind: r.kind,
                    node,
                    name: r.name,
                    extra: r.extra,
                })
            })
            .collect::<Option<Vec<Root>>>()
            .ok_or_else(|| invalid("a root is the key of no node"))?;
        let holders = resolve_holders(&self.local_names, &space)?;
        drop((keys, index));
        let PackedSnapshot {
            metadata,
            strings,
            types,
            local_names,
            derive_external_roots,
            bounds,
            ..
        } = self;
        local_names.apply(
            holders.into_iter(),
            &offsets,
            &mut label_kinds,
            &mut label_values,
        );
        let nodes = Nodes {
            address,
            type_idx,
            size,
            flags,
            refcount,
            name,
            length,
        };
        if derive_external_roots {
            roots.extend(external_roots(&nodes, &targets));
        }
        let snapshot = Snapshot {
            metadata,
            strings,
            types,
            nodes,
            edges: Edges {
                offsets,
                targets,
                label_kinds,
                label_values,
            },
            roots,
            bounds,
        };
        snapshot
            .validate()
            .map_err(|e| FormatError::InvalidSnapshot { detail: e.0 })?;
        Ok(snapshot)
    }

    /// The checks of `Snapshot::validate` on nodes, roots and bounds that a packed
    /// snapshot can fail, without unpacking it: every count agrees, every index is in
    /// range. With [`PackedSnapshot::validate_edges`], the whole check, in two parts of
    /// about the same time that can run side by side.
    pub(crate) fn validate_nodes(&self) -> Result<(), String> {
        let n = self.n_nodes() as u64;
        let n_strings = self.strings.len() as u64;
        let n_types = self.types.len() as u64;
        for (i, run) in self.runs.iter().enumerate() {
            let len = run.len() as u64;
            for (column, entries) in [
                ("address", run.addresses.len()),
                ("type", run.type_idx.len()),
                ("size", run.size.len()),
                ("refcount", run.refcount.len()),
                ("name", run.name.len()),
                ("length", run.length.len()),
                ("key", run.keys.len()),
                ("degree", run.degrees.len()),
            ] {
                if entries != len {
                    return Err(format!(
                        "node column {column} of run {i} has {entries} entries, expected {len}"
                    ));
                }
            }
            if run.addresses.misaligned {
                return Err("a node address is not 8-aligned".into());
            }
            // Upper bounds kept as the columns grew: no value is decoded.
            if len > 0 && run.type_idx.max() >= n_types {
                let t = run.type_idx.max();
                return Err(format!("node type {t} out of range ({n_types} types)"));
            }
            // A name is an opt-id: 0 for none, else the string id plus one.
            if run.name.max() > n_strings {
                return Err(format!(
                    "node name string {} out of range",
                    run.name.max() - 1
                ));
            }
        }
        if self.types.name.len() != self.types.address.len() {
            return Err("type columns differ in length".into());
        }
        if let Some(s) = self
            .types
            .name
            .iter()
            .find(|s| s.index() as u64 >= n_strings)
        {
            return Err(format!("type name string {} out of range", s.0));
        }
        if self
            .local_names
            .lists
            .iter()
            .flatten()
            .any(|s| s.index() as u64 >= n_strings)
            || self
                .local_names
                .holders
                .iter()
                .any(|&(_, list)| list as usize >= self.local_names.lists.len())
        {
            return Err("local names out of range".into());
        }
        if self
            .local_names
            .holders
            .windows(2)
            .any(|w| w[0].0 >= w[1].0)
        {
            return Err("holders of local names not in ascending key order".into());
        }
        for root in &self.roots {
            if root.name != NO_STR && root.name.index() as u64 >= n_strings {
                return Err(format!("root name string {} out of range", root.name.0));
            }
        }
        if self.bounds.iter().any(|b| b.node.index() as u64 >= n)
            || self.bounds.windows(2).any(|w| w[0].node >= w[1].node)
        {
            return Err("bounded containers out of range or not sorted by node".into());
        }
        if !self.metadata.include_values {
            let mut first_node = 0usize;
            for run in &self.runs {
                if let Some(at) = run
                    .flags
                    .iter()
                    .position(|f| f & node_flags::HAS_VALUE != 0)
                {
                    return Err(format!(
                        "node {} carries a string value but include_values is off; values \
                         are stored only when the user opts in",
                        first_node + at
                    ));
                }
                first_node += run.len();
            }
        }
        Ok(())
    }

    /// The checks on edges: counts and labels (see `validate_nodes`). Whether each target
    /// is the key of a node is for the reader to find out: an index of the keys is most
    /// of what storing keys saves the capture.
    pub(crate) fn validate_edges(&self) -> Result<(), String> {
        let n_strings = self.strings.len() as u64;
        for (i, run) in self.runs.iter().enumerate() {
            let degree_sum = run.degrees.values().sum_of_next(run.degrees.len());
            let (labels, targets) = (run.labels.len(), run.targets.len());
            if degree_sum != labels || targets != labels {
                return Err(format!(
                    "run {i}: {degree_sum} edges by degree, {labels} labels, {targets} targets"
                ));
            }
            // Every label code is valid as made by `push_label`; only string ids can be
            // out of range.
            if run.string_labels_end() > n_strings {
                let value = run.string_labels_end() - 1;
                return Err(format!("edge label string {value} out of range"));
            }
        }
        Ok(())
    }

    /// Parts a section is compressed in: a per-node or per-edge column, one per run.
    pub(crate) fn column_parts(&self, section: Section) -> usize {
        if is_run_column(section) {
            self.filled_runs().count().max(1)
        } else {
            1
        }
    }

    /// Part `part` of a column: the bytes of one run, as the walk appended them.
    pub(crate) fn column_part(
        &self,
        section: Section,
        part: usize,
        sink: &mut ColumnSink<'_>,
    ) -> io::Result<()> {
        match self.filled_runs().nth(part) {
            Some(run) => sink.bytes(run.payload(section, part == 0)),
            None if part == 0 => sink.bytes(&empty_run_payload(section)),
            None => Ok(()),
        }
    }
}

/// A section's payload when there are no nodes: only the addresses say something, their
/// shift.
fn empty_run_payload(section: Section) -> Vec<u8> {
    match section {
        Section::NodeAddress => AddressColumn::default().column.bytes,
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(values: &[u64]) -> PackedColumn {
        let mut column = PackedColumn::default();
        for &v in values {
            column.push(v);
        }
        column
    }

    #[test]
    fn values_decode_every_width() {
        let values = [
            0,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ];
        let packed = column(&values);
        assert_eq!(packed.values().collect::<Vec<_>>(), values);
        assert_eq!(packed.len(), values.len() as u64);
    }

    /// Mostly one-byte values with runs of longer ones, as the degree and label columns.
    fn mixed_values(n: u64) -> Vec<u64> {
        (0..n)
            .map(|i| match i % 23 {
                0 => 1 << (7 * (i % 9)),
                5 | 6 => 200 + i,
                _ => i % 128,
            })
            .collect()
    }

    #[test]
    fn skipping_and_summing_agree_with_decoding_one_value_at_a_time() {
        let values = mixed_values(300);
        let packed = column(&values);
        for start in [0usize, 1, 5, 17, 60] {
            for count in 0..(values.len() - start + 3) {
                let mut skipped = packed.values();
                skipped.skip_values(start as u64);
                let mut summed = packed.values();
                summed.skip_values(start as u64);
                skipped.skip_values(count as u64);
                let sum = summed.sum_of_next(count as u64);
                let taken = &values[start..(start + count).min(values.len())];
                let expected = taken.iter().fold(0u64, |a, v| a.wrapping_add(*v));
                assert_eq!(sum, expected, "start {start} count {count}");
                assert_eq!(
                    skipped.offset(),
                    summed.offset(),
                    "start {start} count {count}"
                );
                assert_eq!(skipped.next(), values.get(start + count).copied());
            }
        }
    }

    #[test]
    fn patches_may_grow_or_shrink_values_and_skip_what_names_nothing() {
        let values = [5, 300, 7, 1 << 40, 9];
        // Growing, shrinking, a duplicate position (the first wins) and one past the end.
        let patches = [(0, 1 << 35), (1, 2), (1, 99), (3, 4), (9, 1)];
        let patched = column(&values).patched(&patches);
        assert_eq!(patched.values().collect::<Vec<_>>(), [1 << 35, 2, 7, 4, 9]);
        assert_eq!(patched.len(), values.len() as u64);
        assert_eq!(column(&values).patched(&[]), column(&values));
    }
}
