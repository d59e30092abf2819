//! A snapshot held as the file's own section payloads, for the capture.
//!
//! The capture appends each node's columns and each edge's label as it goes, already
//! encoded the way the file stores them (varints, deltas). That keeps a node at about a
//! dozen bytes until the file is written, where a [`Snapshot`] needs over sixty, and
//! makes writing a matter of compressing bytes that already exist. Only the edge targets
//! stay a plain column: they are numbered after the walk. [`PackedSnapshot::into_snapshot`]
//! turns the payloads into a `Snapshot` with the reader's own decoders.

use std::io;

use crate::columns::{self, SnapshotCounts, TargetColumn, TargetSpace};
use crate::decode::{index_keys, resolve_holders};
use crate::encode::ColumnSink;
use crate::error::FormatError;
use crate::keys::{external_roots, KeyColumn, KeyedRoot, LocalNames};
use crate::layout::Section;
use crate::model::{
    node_flags, Bound, Edges, LabelKind, Metadata, Nodes, Root, Snapshot, StrId, StringTable,
    TypeIdx, Types, NO_STR,
};
use crate::parallel;
use crate::varint::{put_varint, unzigzag, zigzag};

/// Addresses are stored shifted by this many bits: every Python object is 8-aligned, and
/// the shift is fixed before the first address is known (the in-memory writer picks the
/// widest shift all addresses share, so the two files may differ by that choice alone).
const ADDRESS_SHIFT: u32 = 3;

/// Varints appended one at a time: a column's section payload as it grows.
#[derive(Clone, Debug, Default)]
pub struct PackedColumn {
    bytes: Vec<u8>,
    len: u64,
    /// The largest value ever stored: an upper bound of the values (one replaced by a
    /// smaller one stays counted), so that range checks before writing need not decode
    /// the column.
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
        self.max = self.max.max(value);
    }

    /// No value is above this (see the field).
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

    /// Appends `other`'s values after this column's.
    pub fn append(&mut self, other: PackedColumn) {
        self.bytes.extend_from_slice(&other.bytes);
        self.len += other.len;
        self.max = self.max.max(other.max);
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

    /// Appends `other`'s addresses after this column's: only its first delta, taken from
    /// zero, is re-encoded from this column's last address.
    pub fn append(&mut self, other: AddressColumn) {
        self.misaligned |= other.misaligned;
        let mut values = PackedValues {
            bytes: &other.column.bytes,
            offset: 1,
        };
        let Some(first) = values.next() else {
            return;
        };
        let first = unzigzag(first) as u64;
        self.column
            .push(zigzag(first.wrapping_sub(self.previous) as i64));
        self.column
            .bytes
            .extend_from_slice(&other.column.bytes[values.offset..]);
        self.column.len += other.column.len - 1;
        self.previous = other.previous;
    }
}

/// One node's columns, appended once its edges are known.
#[derive(Clone, Copy, Debug)]
pub struct PackedNode {
    pub address: u64,
    pub type_idx: TypeIdx,
    pub size: u64,
    pub flags: u8,
    pub refcount: u32,
    pub name: StrId,
    pub length: u64,
    /// Edges appended (with [`PackedNodes::push_label`]) since the previous node.
    pub degree: u64,
}

/// The per-node columns and the edge labels, appended in node order during the walk.
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
    pub degrees: PackedColumn,
    /// Pushed with [`PackedNodes::push_label`] only, which keeps `string_labels_end`.
    pub labels: PackedColumn,
    /// One past the largest string id a label holds (0 when none does).
    string_labels_end: u64,
}

impl PackedNodes {
    #[inline]
    pub fn push(&mut self, node: PackedNode) {
        self.addresses.push(node.address);
        self.type_idx.push(u64::from(node.type_idx.0));
        self.size.push(node.size);
        self.flags.push(node.flags);
        self.refcount.push(columns::refcount_code(node.refcount));
        self.name.push(columns::str_id_code(node.name));
        self.length.push(node.length);
        self.degrees.push(node.degree);
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

    /// Appends `other`'s nodes and their edges' labels after this one's (a second
    /// walking thread's columns); each column is freed as soon as it is copied.
    pub fn append(&mut self, other: PackedNodes) {
        self.addresses.append(other.addresses);
        self.type_idx.append(other.type_idx);
        self.size.append(other.size);
        self.flags.extend_from_slice(&other.flags);
        drop(other.flags);
        self.refcount.append(other.refcount);
        self.name.append(other.name);
        self.length.append(other.length);
        self.degrees.append(other.degrees);
        self.labels.append(other.labels);
        self.string_labels_end = self.string_labels_end.max(other.string_labels_end);
    }

    pub fn is_empty(&self) -> bool {
        self.flags.is_empty()
    }

    pub fn n_edges(&self) -> u64 {
        self.labels.len()
    }

    /// The columns of one varint per node (addresses, which start with a shift byte,
    /// aside).
    fn per_node_columns(&mut self) -> [&mut PackedColumn; 6] {
        [
            &mut self.type_idx,
            &mut self.size,
            &mut self.refcount,
            &mut self.name,
            &mut self.length,
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
    }

    /// Gives back the room reserved beyond what was used.
    pub fn shrink_to_fit(&mut self) {
        self.addresses.column.shrink_to_fit();
        for column in self.per_node_columns() {
            column.shrink_to_fit();
        }
        self.labels.shrink_to_fit();
        self.flags.shrink_to_fit();
    }

    /// Replaces the sizes of the listed nodes (sorted by node).
    pub fn patch_sizes(&mut self, sizes: &[(u64, u64)]) {
        self.size = std::mem::take(&mut self.size).patched(sizes);
    }
}

/// Edge targets are compressed in two parts from this many edges.
pub(crate) const SPLIT_TARGETS_FROM_EDGES: u64 = 1 << 18;
/// Share of the edges in the first part of the targets, in percent: the parts cost the
/// same per edge, the second starting where the predictions start afresh.
const FIRST_PART_PERCENT: u64 = 50;
/// Nodes whose degrees are summed at a time while looking for the split: the split
/// falls where the predictions start afresh.
const SPLIT_STEP_NODES: usize = columns::TARGET_STATE_NODES;

/// A whole snapshot in packed form: what the capture writes to a file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PackedSnapshot {
    pub metadata: Metadata,
    pub strings: StringTable,
    pub types: Types,
    pub nodes: PackedNodes,
    /// Each node's key, in node order: edge targets name nodes by key.
    pub node_keys: KeyColumn,
    /// The target's key, one per label, in node order (the node's own edges in a row).
    pub targets: KeyColumn,
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
        self.nodes.len()
    }

    pub fn n_edges(&self) -> usize {
        self.targets.len()
    }

    pub fn counts(&self) -> SnapshotCounts {
        SnapshotCounts {
            n_strings: self.strings.len() as u64,
            n_types: self.types.len() as u64,
            n_nodes: self.nodes.len() as u64,
            n_edges: self.targets.len() as u64,
            n_roots: self.roots.len() as u64,
        }
    }

    /// The same snapshot unpacked, through the file reader's decoders (which also
    /// validate it).
    pub fn into_snapshot(self) -> Result<Snapshot, FormatError> {
        let PackedSnapshot {
            metadata,
            strings,
            types,
            nodes: packed,
            node_keys,
            targets: target_keys,
            roots: keyed_roots,
            derive_external_roots,
            local_names,
            bounds,
        } = self;
        let n = packed.len() as u64;
        let n_edges = target_keys.len() as u64;
        // Two halves of about the same work, the first on a second thread when one can be
        // started: unpacking is most of `capture_heap()` after the walk.
        // Numbering the keys and mapping the targets is about as much work as decoding
        // every other column: one half each.
        let first = || -> Result<_, FormatError> {
            Ok((
                columns::decode_addresses(packed.addresses.column.bytes(), n)?,
                columns::decode_node_types(packed.type_idx.bytes(), n)?,
                columns::decode_sizes(packed.size.bytes(), n)?,
                columns::decode_refcounts(packed.refcount.bytes(), n)?,
                columns::decode_names(packed.name.bytes(), n)?,
                columns::decode_lengths(packed.length.bytes(), n)?,
                columns::decode_offsets(packed.degrees.bytes(), n, n_edges)?,
                columns::decode_labels(packed.labels.bytes(), n_edges)?,
            ))
        };
        let second = || -> Result<_, FormatError> {
            let invalid = |detail: &str| FormatError::InvalidSnapshot {
                detail: detail.into(),
            };
            let keys: Vec<u64> = node_keys.map_all(Some).unwrap_or_default();
            let index = index_keys(&keys)?;
            let space = TargetSpace::Keys {
                keys: &keys,
                index: &index,
            };
            let targets = target_keys
                .map_all(|key| space.node(key))
                .ok_or_else(|| invalid("an edge target is the key of no node"))?;
            let roots = keyed_roots
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
            let holders = resolve_holders(&local_names, &space)?;
            Ok((targets, roots, holders))
        };
        let (first, second) = parallel::join(first, second);
        let (address, type_idx, size, refcount, name, length, offsets, labels) = first?;
        let (mut label_kinds, mut label_values) = labels;
        let (targets, mut roots, holders) = second?;
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
            flags: packed.flags,
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
        let n = self.nodes.len() as u64;
        let n_strings = self.strings.len() as u64;
        let n_types = self.types.len() as u64;
        let nodes = &self.nodes;
        for (column, len) in [
            ("address", nodes.addresses.len()),
            ("type", nodes.type_idx.len()),
            ("size", nodes.size.len()),
            ("refcount", nodes.refcount.len()),
            ("name", nodes.name.len()),
            ("length", nodes.length.len()),
            ("degree", nodes.degrees.len()),
        ] {
            if len != n {
                return Err(format!(
                    "node column {column} has {len} entries, expected {n}"
                ));
            }
        }
        if nodes.addresses.misaligned {
            return Err("a node address is not 8-aligned".into());
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
        // Upper bounds kept as the columns grew: no value is decoded.
        if n > 0 && nodes.type_idx.max() >= n_types {
            let t = nodes.type_idx.max();
            return Err(format!("node type {t} out of range ({n_types} types)"));
        }
        // A name is an opt-id: 0 for none, else the string id plus one.
        if nodes.name.max() > n_strings {
            return Err(format!(
                "node name string {} out of range",
                nodes.name.max() - 1
            ));
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
            if let Some(node) = nodes
                .flags
                .iter()
                .position(|f| f & node_flags::HAS_VALUE != 0)
            {
                return Err(format!(
                    "node {node} carries a string value but include_values is off; values \
                     are stored only when the user opts in"
                ));
            }
        }
        Ok(())
    }

    /// The checks on edges: counts, targets and labels (see `validate_nodes`).
    pub(crate) fn validate_edges(&self) -> Result<(), String> {
        let n = self.nodes.len() as u64;
        let n_strings = self.strings.len() as u64;
        let nodes = &self.nodes;
        let n_edges = self.targets.len() as u64;
        let degree_sum = nodes.degrees.values().sum_of_next(nodes.degrees.len());
        if degree_sum != n_edges || nodes.labels.len() != n_edges {
            return Err(format!(
                "{degree_sum} edges by degree, {} labels, {n_edges} targets",
                nodes.labels.len()
            ));
        }
        // Whether each target is the key of a node is for the reader to find out: an
        // index of the keys is most of what storing keys saves the capture.
        if self.node_keys.len() as u64 != n {
            return Err(format!("{} node keys for {n} nodes", self.node_keys.len()));
        }
        // Every label code is valid as made by `push_label`; only string
        // ids can be out of range.
        if nodes.string_labels_end() > n_strings {
            let value = nodes.string_labels_end() - 1;
            return Err(format!("edge label string {value} out of range"));
        }
        Ok(())
    }

    /// The payload of one per-node or per-edge section.
    /// Parts the edge targets are compressed in: two from [`SPLIT_TARGETS_FROM_EDGES`].
    pub(crate) fn column_parts(&self, section: Section) -> usize {
        if section == Section::EdgeTargets && self.targets.len() as u64 >= SPLIT_TARGETS_FROM_EDGES
        {
            2
        } else {
            1
        }
    }

    /// Part `part` of a column: the edge targets of the nodes before the split, or from
    /// it on (encoded as the whole column would be). Their encoding is the slowest of
    /// the write, twice the time of any other job on a large heap.
    pub(crate) fn column_part(
        &self,
        section: Section,
        part: usize,
        sink: &mut ColumnSink<'_>,
    ) -> io::Result<()> {
        if self.column_parts(section) == 1 {
            return self.column(section, sink);
        }
        let split = self.targets_split();
        self.encode_targets(Some((part, split)), sink)
    }

    /// The edge targets, whole or one of the two parts split at `(node, edge)`.
    fn encode_targets(
        &self,
        part: Option<(usize, (usize, usize))>,
        sink: &mut ColumnSink<'_>,
    ) -> io::Result<()> {
        // Node keys as a concrete iterator per width: this loop runs once per edge.
        match &self.node_keys {
            KeyColumn::Narrow(keys) => {
                self.encode_targets_keyed(keys.iter().map(|&k| u64::from(k)), part, sink)
            }
            KeyColumn::Wide(keys) => self.encode_targets_keyed(keys.iter().copied(), part, sink),
        }
    }

    fn encode_targets_keyed(
        &self,
        mut node_keys: impl Iterator<Item = u64>,
        part: Option<(usize, (usize, usize))>,
        sink: &mut ColumnSink<'_>,
    ) -> io::Result<()> {
        let mut degrees = self.nodes.degrees.values();
        let mut node_types = self.nodes.type_idx.values();
        let all = self.targets.as_slice();
        let (targets, first_node, n_nodes) = match part {
            None => (all, 0, self.nodes.len()),
            Some((0, (split_node, split_edge))) => (all.range(0, split_edge), 0, split_node),
            Some((_, (split_node, split_edge))) => {
                // The predictions start afresh at the split: nothing before it is read.
                degrees.skip_values(split_node as u64);
                node_types.skip_values(split_node as u64);
                node_keys.by_ref().take(split_node).for_each(drop);
                (all.range(split_edge, usize::MAX), split_node, usize::MAX)
            }
        };
        TargetColumn {
            targets,
            degrees: degrees.take(n_nodes),
            node_types: node_types.map(|t| t as u32).take(n_nodes),
            node_keys,
            n_types: self.types.len(),
            first_node,
        }
        .encode(sink)
    }

    /// The first node of the second part of the edge targets, and its first edge: about
    /// [`FIRST_PART_PERCENT`] of the edges come before it.
    fn targets_split(&self) -> (usize, usize) {
        let wanted = self.targets.len() as u64 * FIRST_PART_PERCENT / 100;
        let n = self.nodes.len();
        let mut degrees = self.nodes.degrees.values();
        let (mut node, mut edges) = (0usize, 0u64);
        while edges < wanted && node < n {
            let step = (n - node).min(SPLIT_STEP_NODES);
            edges = edges.saturating_add(degrees.sum_of_next(step as u64));
            node += step;
        }
        (node, edges as usize)
    }

    pub(crate) fn column(&self, section: Section, sink: &mut ColumnSink<'_>) -> io::Result<()> {
        let nodes = &self.nodes;
        match section {
            Section::NodeAddress => sink.bytes(nodes.addresses.column.bytes()),
            Section::NodeType => sink.bytes(nodes.type_idx.bytes()),
            Section::NodeSize => sink.bytes(nodes.size.bytes()),
            Section::NodeFlags => sink.bytes(&nodes.flags),
            Section::NodeRefcount => sink.bytes(nodes.refcount.bytes()),
            Section::NodeName => sink.bytes(nodes.name.bytes()),
            Section::NodeLength => sink.bytes(nodes.length.bytes()),
            Section::EdgeDegrees => sink.bytes(nodes.degrees.bytes()),
            Section::NodeKeys => match &self.node_keys {
                KeyColumn::Narrow(keys) => {
                    columns::encode_node_keys(keys.iter().map(|&k| u64::from(k)), sink)
                }
                KeyColumn::Wide(keys) => columns::encode_node_keys(keys.iter().copied(), sink),
            },
            Section::EdgeTargets => self.encode_targets(None, sink),
            Section::EdgeLabels => sink.bytes(nodes.labels.bytes()),
            _ => Ok(()),
        }
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
    fn nodes_appended_from_a_second_writer_equal_one_writer() {
        let node = |i: u64| PackedNode {
            // Addresses going up and down, so that the re-based delta changes sign.
            address: 0x7f00_0000_0000 + (i % 3) * 0x10_0000 + i * 8,
            type_idx: TypeIdx((i % 5) as u32),
            size: 16 + i,
            flags: (i % 4) as u8,
            refcount: i as u32,
            name: if i.is_multiple_of(2) {
                NO_STR
            } else {
                StrId(i as u32)
            },
            length: i * 3,
            degree: i % 3,
        };
        let label = |i: u64| {
            let kind = if i == 1 {
                LabelKind::Attr
            } else {
                LabelKind::Index
            };
            (kind, i as u32)
        };
        let fill = |nodes: &mut PackedNodes, range: std::ops::Range<u64>| {
            for i in range {
                for e in 0..i % 3 {
                    let (kind, value) = label(e);
                    nodes.push_label(kind, value);
                }
                nodes.push(node(i));
            }
        };
        let mut whole = PackedNodes::default();
        fill(&mut whole, 0..40);
        for split in [0, 1, 17, 40] {
            let mut first = PackedNodes::default();
            fill(&mut first, 0..split);
            let mut second = PackedNodes::default();
            fill(&mut second, split..40);
            first.append(second);
            assert_eq!(first, whole, "split at {split}");
            // The bounds the check reads, too.
            for (appended, one) in [
                (&first.type_idx, &whole.type_idx),
                (&first.name, &whole.name),
            ] {
                assert_eq!(appended.max(), one.max(), "split at {split}");
            }
            assert_eq!(first.string_labels_end(), whole.string_labels_end());
        }
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
