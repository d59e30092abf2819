//! Difference between two snapshots of one process: which objects are new, and how each
//! type grew or shrank.
//!
//! Identity: an object of B is "the same" as an object of A when both its address and
//! its type name match. CPython reuses freed addresses, so an address alone would hide
//! a new object that landed where an object of another type used to be; the rare reuse
//! of an address by a new object of the *same* type is indistinguishable from survival
//! and is counted as survival.

use std::collections::HashMap;

use heapsight_graph::{PathTree, ShapeIndex, ShapeReport};
use heapsight_snapshot::model::{NodeIdx, Snapshot, TypeIdx};
use serde::Serialize;

/// Count and byte change of one type between A and B.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TypeGrowth {
    /// The type, `module.QualName`.
    pub type_name: String,
    /// Objects of the type in A.
    pub count_before: u64,
    /// Objects of the type in B.
    pub count_after: u64,
    /// `count_after - count_before`.
    pub count_delta: i64,
    /// Bytes of those objects in A.
    pub bytes_before: u64,
    /// Bytes of those objects in B.
    pub bytes_after: u64,
    /// `bytes_after - bytes_before`.
    pub bytes_delta: i64,
    /// Objects of B that did not exist in A.
    pub new_count: u64,
    /// Bytes of the new objects.
    pub new_bytes: u64,
    /// Objects present in both whose size increased (a list, dict or bytearray that
    /// grew in place), and the sum of their increases.
    pub grown_in_place_count: u64,
    /// Bytes gained by the objects that grew in place.
    pub grown_in_place_bytes: u64,
}

/// Per-type figures accumulated during the diff.
#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    count_before: u64,
    bytes_before: u64,
    count_after: u64,
    bytes_after: u64,
    new_count: u64,
    new_bytes: u64,
    grown_count: u64,
    grown_bytes: u64,
}

/// The difference of B against A.
#[derive(Clone, Debug, PartialEq)]
pub struct SnapshotDiff {
    /// Per B node: whether it did not exist in A.
    is_new: Vec<bool>,
    /// B nodes that existed in A and got bigger, with the number of bytes gained.
    pub grown_in_place: Vec<(NodeIdx, u64)>,
    /// Every type present in A or B with its change; order: see [`SnapshotDiff::compute`].
    pub types: Vec<TypeGrowth>,
    /// Objects of B absent from A.
    pub n_new: u64,
    /// Bytes of those objects.
    pub new_bytes: u64,
    /// Objects of A not found in B (freed, or replaced at the same address).
    pub n_gone: u64,
    /// Bytes of the objects of A absent from B.
    pub gone_bytes: u64,
    /// Sum of the sizes of A's objects.
    pub total_bytes_before: u64,
    /// Sum of the sizes of B's objects.
    pub total_bytes_after: u64,
}

/// Interns type names across two snapshots, whose string tables differ.
#[derive(Default)]
struct NameIds<'a> {
    ids: HashMap<&'a str, u32>,
    names: Vec<&'a str>,
}

impl<'a> NameIds<'a> {
    fn id(&mut self, name: &'a str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.ids.insert(name, id);
        self.names.push(name);
        id
    }

    /// Per type of `snapshot`, the shared name id.
    fn for_types(&mut self, snapshot: &'a Snapshot) -> Vec<u32> {
        snapshot
            .types
            .name
            .iter()
            .map(|&s| self.id(snapshot.str(s).unwrap_or("?")))
            .collect()
    }
}

/// Size of node `i`; 0 for a node missing from the size column (an unvalidated
/// snapshot), so the diff never panics on inconsistent input.
/// Whether a surviving object's length allows its size increase to count as growth: a
/// container whose length did not increase (a full `deque(maxlen=...)` rotating through its
/// blocks, a dict rebuilt at the same size) only moved memory around. Objects without a
/// length (both 0) are judged by size alone.
fn grew_in_length(
    before: &Snapshot,
    node_before: usize,
    after: &Snapshot,
    node_after: usize,
) -> bool {
    let len_before = before.nodes.length.get(node_before).copied().unwrap_or(0);
    let len_after = after.nodes.length.get(node_after).copied().unwrap_or(0);
    (len_before == 0 && len_after == 0) || len_after > len_before
}

fn size_of(snapshot: &Snapshot, i: usize) -> u64 {
    snapshot.nodes.size.get(i).copied().unwrap_or(0)
}

impl SnapshotDiff {
    /// Compares `after` (B) against `before` (A).
    ///
    /// Costs O((n_A + n_B) log n_A) time and 16 bytes per node of A. Types are ordered
    /// by byte growth (largest first), then count growth, then name, so the types that
    /// grew come first and those that shrank most come last.
    pub fn compute(before: &Snapshot, after: &Snapshot) -> SnapshotDiff {
        let mut names = NameIds::default();
        let type_ids_a = names.for_types(before);
        let type_ids_b = names.for_types(after);
        let name_of = |ids: &[u32], snapshot: &Snapshot, node: usize| -> u32 {
            snapshot
                .nodes
                .type_idx
                .get(node)
                .and_then(|t| ids.get(t.index()))
                .copied()
                .unwrap_or(u32::MAX)
        };

        let mut tallies: Vec<Tally> = vec![Tally::default(); names.names.len()];
        // (address, type name id, node of A), sorted for lookups by (address, name).
        let mut by_address: Vec<(u64, u32, u32)> = Vec::with_capacity(before.n_nodes());
        let mut total_bytes_before = 0u64;
        for i in 0..before.n_nodes() {
            let name = name_of(&type_ids_a, before, i);
            let size = size_of(before, i);
            total_bytes_before += size;
            if let Some(t) = tallies.get_mut(name as usize) {
                t.count_before += 1;
                t.bytes_before += size;
            }
            by_address.push((
                before.nodes.address.get(i).copied().unwrap_or(0),
                name,
                i as u32,
            ));
        }
        by_address.sort_unstable();
        // Marks which A entries were matched, to count what went away.
        let mut matched = vec![false; by_address.len()];

        let mut is_new = vec![false; after.n_nodes()];
        let mut grown_in_place = Vec::new();
        let (mut n_new, mut new_bytes, mut total_bytes_after) = (0u64, 0u64, 0u64);
        for (i, new_flag) in is_new.iter_mut().enumerate() {
            let name = name_of(&type_ids_b, after, i);
            let size = size_of(after, i);
            let address = after.nodes.address.get(i).copied().unwrap_or(0);
            total_bytes_after += size;
            let pos = by_address.partition_point(|e| (e.0, e.1) < (address, name));
            let found = by_address
                .get(pos)
                .filter(|e| (e.0, e.1) == (address, name) && !matched[pos])
                .map(|_| pos);
            let tally = tallies.get_mut(name as usize);
            match found {
                Some(pos) => {
                    matched[pos] = true;
                    let node_before = by_address[pos].2 as usize;
                    let size_before = size_of(before, node_before);
                    if size > size_before && grew_in_length(before, node_before, after, i) {
                        grown_in_place.push((NodeIdx(i as u32), size - size_before));
                        if let Some(t) = tally {
                            t.grown_count += 1;
                            t.grown_bytes += size - size_before;
                        }
                    }
                }
                None => {
                    *new_flag = true;
                    n_new += 1;
                    new_bytes += size;
                    if let Some(t) = tally {
                        t.new_count += 1;
                        t.new_bytes += size;
                    }
                }
            }
            if let Some(t) = tallies.get_mut(name as usize) {
                t.count_after += 1;
                t.bytes_after += size;
            }
        }
        let (mut n_gone, mut gone_bytes) = (0u64, 0u64);
        for (entry, was_matched) in by_address.iter().zip(&matched) {
            if !was_matched {
                n_gone += 1;
                gone_bytes += size_of(before, entry.2 as usize);
            }
        }

        let mut types: Vec<TypeGrowth> = tallies
            .iter()
            .zip(&names.names)
            .filter(|(t, _)| t.count_before + t.count_after > 0)
            .map(|(t, name)| TypeGrowth {
                type_name: (*name).to_owned(),
                count_before: t.count_before,
                count_after: t.count_after,
                count_delta: t.count_after as i64 - t.count_before as i64,
                bytes_before: t.bytes_before,
                bytes_after: t.bytes_after,
                bytes_delta: t.bytes_after as i64 - t.bytes_before as i64,
                new_count: t.new_count,
                new_bytes: t.new_bytes,
                grown_in_place_count: t.grown_count,
                grown_in_place_bytes: t.grown_bytes,
            })
            .collect();
        types.sort_by(|a, b| {
            b.bytes_delta
                .cmp(&a.bytes_delta)
                .then(b.count_delta.cmp(&a.count_delta))
                .then_with(|| a.type_name.cmp(&b.type_name))
        });
        SnapshotDiff {
            is_new,
            grown_in_place,
            types,
            n_new,
            new_bytes,
            n_gone,
            gone_bytes,
            total_bytes_before,
            total_bytes_after,
        }
    }

    /// Whether B's `node` did not exist in A (false when out of range).
    pub fn is_new(&self, node: NodeIdx) -> bool {
        self.is_new.get(node.index()).copied().unwrap_or(false)
    }

    /// Nodes of B that are new.
    pub fn new_nodes(&self) -> impl Iterator<Item = NodeIdx> + '_ {
        self.is_new
            .iter()
            .enumerate()
            .filter(|(_, n)| **n)
            .map(|(i, _)| NodeIdx(i as u32))
    }

    /// New nodes of B whose type is `type_name`.
    pub fn new_nodes_of_type<'a>(
        &'a self,
        after: &'a Snapshot,
        type_name: &'a str,
    ) -> impl Iterator<Item = NodeIdx> + 'a {
        self.new_nodes()
            .filter(move |&n| after.type_name(n) == type_name)
    }

    /// Growth of `type_name`, if it exists in either snapshot.
    pub fn growth_of(&self, type_name: &str) -> Option<&TypeGrowth> {
        self.types.iter().find(|t| t.type_name == type_name)
    }

    /// How the new objects of the types that grew are held: for each of the first
    /// `limit` types of [`SnapshotDiff::grown`] that have new objects, the retainer
    /// shapes of those objects in B (`paths` is B's shortest-path tree; the shapes it
    /// carries when it comes from a `HeapIndex` are read, not recomputed).
    pub fn new_object_shapes(
        &self,
        after: &Snapshot,
        paths: &PathTree,
        limit: usize,
    ) -> Vec<(String, ShapeReport)> {
        let wanted: Vec<&str> = self
            .grown()
            .filter(|t| t.new_count > 0)
            .take(limit)
            .map(|t| t.type_name.as_str())
            .collect();
        let mut by_type: HashMap<TypeIdx, Vec<NodeIdx>> = HashMap::new();
        for node in self.new_nodes() {
            if let Some(&t) = after.nodes.type_idx.get(node.index()) {
                by_type.entry(t).or_default().push(node);
            }
        }
        let mut shapes = ShapeIndex::new(after, paths);
        wanted
            .into_iter()
            .map(|name| {
                // Types are keyed by address, so one name may cover several type entries.
                let nodes: Vec<NodeIdx> = by_type
                    .iter()
                    .filter(|(t, _)| {
                        after.types.name.get(t.index()).and_then(|s| after.str(*s)) == Some(name)
                    })
                    .flat_map(|(_, nodes)| nodes.iter().copied())
                    .collect();
                (name.to_owned(), shapes.shapes(&nodes))
            })
            .collect()
    }

    /// Types that grew in count or bytes, in table order.
    pub fn grown(&self) -> impl Iterator<Item = &TypeGrowth> {
        self.types
            .iter()
            .filter(|t| t.count_delta > 0 || t.bytes_delta > 0)
    }

    /// Types that shrank in count or bytes and did not grow in the other, most shrunk first.
    pub fn shrunk(&self) -> impl Iterator<Item = &TypeGrowth> {
        self.types.iter().rev().filter(|t| {
            (t.count_delta < 0 || t.bytes_delta < 0) && t.count_delta <= 0 && t.bytes_delta <= 0
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use heapsight_snapshot::model::{node_flags, SnapshotBuilder, NO_STR};

    fn heap(objects: &[(u64, &str, u64)]) -> Snapshot {
        let mut b = SnapshotBuilder::new();
        for &(address, type_name, size) in objects {
            let t = b.type_named(type_name);
            b.add_node(address, t, size, node_flags::GC_TRACKED, 1, NO_STR, 0);
        }
        b.finish()
    }

    #[test]
    fn new_objects_match_by_address_and_type() {
        let a = heap(&[
            (0x10, "dict", 100),
            (0x20, "app.Item", 50),
            (0x30, "str", 40),
        ]);
        // 0x20 reused by a list: new. 0x30 freed. 0x40 and 0x50 new.
        let b = heap(&[
            (0x10, "dict", 130),
            (0x20, "list", 56),
            (0x40, "app.Item", 50),
            (0x50, "app.Item", 50),
        ]);
        let d = SnapshotDiff::compute(&a, &b);
        let new: Vec<u32> = d.new_nodes().map(|n| n.0).collect();
        assert_eq!(new, vec![1, 2, 3]);
        assert_eq!((d.n_new, d.new_bytes), (3, 156));
        assert_eq!((d.n_gone, d.gone_bytes), (2, 90));
        assert_eq!((d.total_bytes_before, d.total_bytes_after), (190, 286));
        assert_eq!(d.grown_in_place, vec![(NodeIdx(0), 30)]);
        let dict_row = d
            .growth_of("dict")
            .map(|t| (t.grown_in_place_count, t.grown_in_place_bytes, t.new_count));
        assert_eq!(dict_row, Some((1, 30, 0)));

        let item = d.growth_of("app.Item").cloned();
        let item = item.unwrap_or_else(|| panic!("app.Item missing"));
        assert_eq!(
            (item.count_before, item.count_after, item.count_delta),
            (1, 2, 1)
        );
        assert_eq!(
            (item.bytes_delta, item.new_count, item.new_bytes),
            (50, 2, 100)
        );
        let str_row = d.growth_of("str").map(|t| (t.count_delta, t.bytes_delta));
        assert_eq!(str_row, Some((-1, -40)));
        let order: Vec<&str> = d.types.iter().map(|t| t.type_name.as_str()).collect();
        assert_eq!(order, vec!["list", "app.Item", "dict", "str"]);
        let shrunk: Vec<&str> = d.shrunk().map(|t| t.type_name.as_str()).collect();
        assert_eq!(shrunk, vec!["str"]);
        let grown: Vec<&str> = d.grown().map(|t| t.type_name.as_str()).collect();
        assert_eq!(grown, vec!["list", "app.Item", "dict"]);
        assert_eq!(d.new_nodes_of_type(&b, "app.Item").count(), 2);
    }

    #[test]
    fn identical_snapshots_have_no_change() {
        let a = heap(&[(0x10, "dict", 100), (0x20, "app.Item", 50)]);
        let d = SnapshotDiff::compute(&a, &a.clone());
        assert_eq!(d.n_new, 0);
        assert_eq!(d.n_gone, 0);
        assert!(d
            .types
            .iter()
            .all(|t| t.count_delta == 0 && t.bytes_delta == 0));
        assert_eq!(d.grown().count(), 0);
    }

    #[test]
    fn inconsistent_columns_do_not_panic() {
        let a = heap(&[(0x10, "dict", 100), (0x20, "app.Item", 50)]);
        let mut b = heap(&[(0x10, "dict", 100), (0x30, "app.Item", 50)]);
        b.nodes.size.pop();
        b.nodes.type_idx.pop();
        let d = SnapshotDiff::compute(&a, &b);
        assert_eq!(d.n_new, 1);
        assert_eq!(d.new_bytes, 0);
    }

    #[test]
    fn types_are_matched_by_name_across_string_tables() {
        // Interning order differs between the two snapshots.
        let a = heap(&[(0x10, "str", 10), (0x20, "app.Item", 50)]);
        let b = heap(&[(0x20, "app.Item", 50), (0x10, "str", 10)]);
        let d = SnapshotDiff::compute(&a, &b);
        assert_eq!(d.n_new, 0);
    }
}
