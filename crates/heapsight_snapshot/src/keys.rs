//! Node keys: how a version 2 file names the target of an edge.
//!
//! A capture meets each object's target before it knows the node number the object will
//! get, so it records targets by a key of its own (a 64 KiB page's slot and the 8-byte
//! granule within it) and stores those keys as they are: numbering them would cost the
//! captured process a pass over every node and every edge. The reader numbers them
//! instead, with a [`KeyIndex`] built from every node's key. Keys are opaque here, except
//! that keys sharing their bits above [`SLOT_SHIFT`] are expected to come in groups, as a
//! page's objects do.

use crate::model::{node_flags, LabelKind, NodeIdx, Nodes, Root, RootKind, StrId, NO_STR};

/// Keys are grouped into slots of 2^13 granules.
pub const SLOT_SHIFT: u32 = 13;
const GRANULE_MASK: u64 = (1 << SLOT_SHIFT) - 1;
const WORDS_PER_SLOT: usize = 1 << (SLOT_SHIFT - 6);
/// Members from which a slot gets a bitmap (1 KiB, plus 256 bytes of counts: at most 20
/// bytes per member); sparser slots keep their granules sorted and are searched.
const DENSE_SLOT_MEMBERS: u32 = 64;
/// Slots a key index accepts beyond twice the node count: a capture claims at most one
/// slot per page holding a node, plus one per page claimed twice in a race.
const SLOT_SLACK: u64 = 1 << 16;
const SPARSE: u32 = u32::MAX;

/// Why a set of node keys cannot be indexed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyError {
    /// Two nodes share this key.
    Duplicate(u64),
    /// The key lies beyond what a snapshot of this many nodes can use.
    OutOfRange(u64),
}

/// From a node's key to its index: a bitmap with running counts for each slot with many
/// members, the sorted granules of the others.
pub struct KeyIndex {
    /// Per slot: the rank of its first member, and its bitmap's index or [`SPARSE`].
    slots: Vec<(u32, u32)>,
    bitmaps: Vec<[u64; WORDS_PER_SLOT]>,
    /// Members of each dense slot in the earlier words of its bitmap.
    counts_before: Vec<[u16; WORDS_PER_SLOT]>,
    /// By rank, for members of sparse slots: their granule, ascending within the slot.
    granules: Vec<u16>,
    /// By rank (key order): the node.
    node_of: Vec<u32>,
}

impl KeyIndex {
    /// Indexes the nodes' keys, `keys[i]` being node `i`'s. Memory: about 6 bytes per node
    /// and 8 per slot, at most 20 more per member of a dense slot, whatever the keys.
    pub fn new(keys: &[u64]) -> Result<KeyIndex, KeyError> {
        let n = keys.len();
        let max_slots = 2 * n as u64 + SLOT_SLACK;
        let mut members: Vec<u32> = Vec::new();
        for &key in keys {
            let slot = key >> SLOT_SHIFT;
            if slot >= max_slots {
                return Err(KeyError::OutOfRange(key));
            }
            let slot = slot as usize;
            if slot >= members.len() {
                members.resize(slot + 1, 0);
            }
            members[slot] += 1;
        }
        let mut slots = Vec::with_capacity(members.len());
        let mut bitmaps: Vec<[u64; WORDS_PER_SLOT]> = Vec::new();
        let mut rank = 0u32;
        for &count in &members {
            let bitmap = if count >= DENSE_SLOT_MEMBERS {
                bitmaps.push([0; WORDS_PER_SLOT]);
                (bitmaps.len() - 1) as u32
            } else {
                SPARSE
            };
            slots.push((rank, bitmap));
            rank += count;
        }
        let mut granules = vec![0u16; n];
        let mut node_of = vec![0u32; n];
        // Dense slots: bits first, counts once all are set, then each node at its rank.
        // Sparse slots: members placed in node order, then sorted by granule.
        let mut filled = members;
        filled.iter_mut().for_each(|f| *f = 0);
        for (node, &key) in keys.iter().enumerate() {
            let slot = (key >> SLOT_SHIFT) as usize;
            let granule = key & GRANULE_MASK;
            let (start, bitmap) = slots[slot];
            if bitmap == SPARSE {
                let at = (start + filled[slot]) as usize;
                filled[slot] += 1;
                granules[at] = granule as u16;
                node_of[at] = node as u32;
            } else {
                let word = &mut bitmaps[bitmap as usize][(granule >> 6) as usize];
                let bit = 1u64 << (granule & 63);
                if *word & bit != 0 {
                    return Err(KeyError::Duplicate(key));
                }
                *word |= bit;
            }
        }
        let counts_before: Vec<[u16; WORDS_PER_SLOT]> = bitmaps
            .iter()
            .map(|words| {
                let mut before = [0u16; WORDS_PER_SLOT];
                let mut count = 0u16;
                for (w, word) in words.iter().enumerate() {
                    before[w] = count;
                    count += word.count_ones() as u16;
                }
                before
            })
            .collect();
        let mut index = KeyIndex {
            slots,
            bitmaps,
            counts_before,
            granules,
            node_of,
        };
        for (node, &key) in keys.iter().enumerate() {
            if let Some(rank) = index.dense_rank(key) {
                index.node_of[rank as usize] = node as u32;
            }
        }
        let mut pairs: Vec<(u16, u32)> = Vec::new();
        for slot in 0..index.slots.len() {
            let (start, bitmap) = index.slots[slot];
            if bitmap != SPARSE {
                continue;
            }
            let range = start as usize..index.slot_end(slot) as usize;
            pairs.clear();
            pairs.extend(range.clone().map(|r| (index.granules[r], index.node_of[r])));
            pairs.sort_unstable();
            if let Some(pair) = pairs.windows(2).find(|p| p[0].0 == p[1].0) {
                let key = ((slot as u64) << SLOT_SHIFT) | u64::from(pair[0].0);
                return Err(KeyError::Duplicate(key));
            }
            for (r, &(granule, node)) in range.zip(&pairs) {
                index.granules[r] = granule;
                index.node_of[r] = node;
            }
        }
        Ok(index)
    }

    fn slot_end(&self, slot: usize) -> u32 {
        self.slots
            .get(slot + 1)
            .map_or(self.node_of.len() as u32, |s| s.0)
    }

    /// The rank of a key of a dense slot, if it is a member.
    #[inline]
    fn dense_rank(&self, key: u64) -> Option<u32> {
        let &(start, bitmap) = self.slots.get(usize::try_from(key >> SLOT_SHIFT).ok()?)?;
        let granule = key & GRANULE_MASK;
        let w = (granule >> 6) as usize;
        let word = self.bitmaps.get(bitmap as usize)?[w];
        let bit = 1u64 << (granule & 63);
        (word & bit != 0).then(|| {
            start
                + u32::from(self.counts_before[bitmap as usize][w])
                + (word & (bit - 1)).count_ones()
        })
    }

    /// The node whose key is `key`, if any.
    #[inline]
    pub fn node(&self, key: u64) -> Option<NodeIdx> {
        let slot = usize::try_from(key >> SLOT_SHIFT).ok()?;
        let &(start, bitmap) = self.slots.get(slot)?;
        let rank = if bitmap == SPARSE {
            let run = self
                .granules
                .get(start as usize..self.slot_end(slot) as usize)?;
            let at = run.binary_search(&((key & GRANULE_MASK) as u16)).ok()?;
            start + at as u32
        } else {
            self.dense_rank(key)?
        };
        self.node_of.get(rank as usize).map(|&node| NodeIdx(node))
    }
}

/// A root as a capture records it: by its node's key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyedRoot {
    pub kind: RootKind,
    pub key: u64,
    /// Module name, thread name, ... or [`NO_STR`].
    pub name: StrId,
    pub extra: u64,
}

/// Names for the edges of some nodes, given when the snapshot is read: an edge of a holder
/// labelled `Index(i)` becomes `Local(list[i])`. A capture names closure cells after their
/// code's free variables and frame slots after its locals this way, since it finds out which
/// nodes hold them only once their edges are stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalNames {
    /// Name lists, one per code object, shared by its closures or frames.
    pub lists: Vec<Vec<StrId>>,
    /// (holder's key, index in `lists`), sorted by key.
    pub holders: Vec<(u64, u32)>,
}

impl LocalNames {
    pub fn is_empty(&self) -> bool {
        self.holders.is_empty()
    }

    /// Renames the edges of each holder (`holders` gives their nodes, in the order of
    /// `self.holders`) in decoded label columns with CSR `offsets`.
    pub fn apply(
        &self,
        holders: impl Iterator<Item = (NodeIdx, u32)>,
        offsets: &[u64],
        kinds: &mut [LabelKind],
        values: &mut [u32],
    ) {
        for (node, list) in holders {
            let Some(names) = self.lists.get(list as usize) else {
                continue;
            };
            let (Some(&start), Some(&end)) =
                (offsets.get(node.index()), offsets.get(node.index() + 1))
            else {
                continue;
            };
            for e in start as usize..(end as usize).min(kinds.len()).min(values.len()) {
                if kinds[e] == LabelKind::Index {
                    if let Some(name) = names.get(values[e] as usize) {
                        kinds[e] = LabelKind::Local;
                        values[e] = name.0;
                    }
                }
            }
        }
    }
}

/// The roots a snapshot's references do not explain: each node (immortals aside) whose
/// reference count exceeds the references to it found in the snapshot, held from outside
/// the graph (C extensions, interpreter internals), in node order.
pub fn external_roots(nodes: &Nodes, targets: &[NodeIdx]) -> Vec<Root> {
    let mut found = vec![0u32; nodes.len()];
    for target in targets {
        if let Some(d) = found.get_mut(target.index()) {
            *d = d.saturating_add(1);
        }
    }
    nodes
        .refcount
        .iter()
        .zip(&nodes.flags)
        .zip(found)
        .enumerate()
        .filter(|&(_, ((&rc, &flags), found))| flags & node_flags::IMMORTAL == 0 && rc > found)
        .map(|(i, ((&rc, _), found))| Root {
            kind: RootKind::External,
            node: NodeIdx(i as u32),
            name: NO_STR,
            extra: u64::from(rc - found),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index_of(keys: &[u64]) -> KeyIndex {
        KeyIndex::new(keys).expect("valid keys")
    }

    #[test]
    fn every_key_finds_its_node_and_no_other_key_does() {
        // Dense slots (a page full of objects), sparse ones, empty ones between them,
        // keys in no particular order.
        let mut keys: Vec<u64> = (0..3000u64).map(|i| (5 << SLOT_SHIFT) + i * 2).collect();
        keys.extend([
            7u64,
            1,
            (9 << SLOT_SHIFT) + 8191,
            (9 << SLOT_SHIFT),
            4 << SLOT_SHIFT,
        ]);
        keys.extend((0..64u64).map(|i| (12 << SLOT_SHIFT) + 8191 - i * 3));
        keys.reverse();
        let index = index_of(&keys);
        for (node, &key) in keys.iter().enumerate() {
            assert_eq!(index.node(key), Some(NodeIdx(node as u32)), "key {key}");
        }
        for absent in [
            0,
            2,
            (5 << SLOT_SHIFT) + 1,
            (9 << SLOT_SHIFT) + 1,
            13 << SLOT_SHIFT,
            u64::MAX,
        ] {
            assert_eq!(index.node(absent), None, "key {absent}");
        }
    }

    #[test]
    fn node_numbers_as_keys_index_to_themselves() {
        let keys: Vec<u64> = (0..20_000).collect();
        let index = index_of(&keys);
        assert!((0..20_000u32).all(|k| index.node(u64::from(k)) == Some(NodeIdx(k))));
    }

    #[test]
    fn shared_and_far_keys_are_refused() {
        let dense_twice: Vec<u64> = (0..100).chain([50]).collect();
        assert_eq!(
            KeyIndex::new(&dense_twice).err(),
            Some(KeyError::Duplicate(50))
        );
        assert_eq!(
            KeyIndex::new(&[3, 9, 3]).err(),
            Some(KeyError::Duplicate(3))
        );
        // Would need a slot table far larger than the snapshot.
        let far = (2 * 3 + SLOT_SLACK) << SLOT_SHIFT;
        assert_eq!(
            KeyIndex::new(&[1, 2, far]).err(),
            Some(KeyError::OutOfRange(far))
        );
        assert!(KeyIndex::new(&[]).is_ok());
    }
}
