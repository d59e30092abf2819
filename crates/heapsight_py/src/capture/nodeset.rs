//! The walk's set of discovered objects, and the compact codes its edges store.
//!
//! One bit per 8-byte granule of address space, in a bitmap per 64 KiB page. A page is found
//! through a two-level directory (a few 2 GiB regions, then an array indexed by page), so
//! neither an insertion nor a lookup hashes. Each member gets a [`Code`], its page's slot
//! and its granule in 32 bits while the heap touches fewer than 2^19 pages (32 GiB): edges
//! keep that code instead of a 64-bit address, and the snapshot stores it as the node's
//! key (`heapsight_snapshot::KeyIndex` numbers the keys when the file is read).

use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};

const GRANULE_SHIFT: u32 = 3;
const PAGE_SHIFT: u32 = 16;
const GRANULE_BITS: u32 = PAGE_SHIFT - GRANULE_SHIFT;
const GRANULE_MASK: usize = (1 << GRANULE_BITS) - 1;
// Codes are stored as node keys: the reader groups them by the same slots.
const _: () = assert!(GRANULE_BITS == heapsight_snapshot::SLOT_SHIFT);
const WORDS_PER_PAGE: usize = 1 << (GRANULE_BITS - 6);
/// Pages per directory leaf (2 GiB of address space per leaf).
const LEAF_SHIFT: u32 = 15;
const LEAF_LEN: usize = 1 << LEAF_SHIFT;
/// Leaves in the directory: 2 GiB each, 128 TiB in all, the whole user address space of
/// x86-64 and arm64 Linux unless a process asks for more with an mmap hint.
const REGIONS: usize = 1 << 16;
/// Page bitmaps are allocated this many at a time (1 MiB, plus the pages' numbers).
const CHUNK_SHIFT: u32 = 10;
const CHUNK_PAGES: usize = 1 << CHUNK_SHIFT;
/// Chunks the set can hold: 2^26 pages of 64 KiB, 4 TiB of touched pages.
const CHUNKS: usize = 1 << 16;

/// A member as `slot << 13 | granule`.
pub type Code = u64;

/// An address the set cannot hold: beyond 128 TiB, or more than 4 TiB of distinct pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfRange;

struct Chunk {
    bits: [[AtomicU64; WORDS_PER_PAGE]; CHUNK_PAGES],
    page: [AtomicUsize; CHUNK_PAGES],
}

/// Allocates a zeroed `T` on the heap without building it on the stack first (a chunk
/// is 1 MiB).
fn boxed_zeroed<T>() -> Box<T> {
    let layout = std::alloc::Layout::new::<T>();
    // SAFETY: every `T` used here is made of atomics, for which all-zero bytes are a
    // valid value; the layout is non-zero-sized. A failed allocation is reported the
    // standard way.
    unsafe {
        let raw = std::alloc::alloc_zeroed(layout) as *mut T;
        if raw.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        Box::from_raw(raw)
    }
}

fn null_pointers<T>(n: usize) -> Box<[AtomicPtr<T>]> {
    (0..n)
        .map(|_| AtomicPtr::new(std::ptr::null_mut()))
        .collect()
}

/// Installs a zeroed `T` at `at` unless another thread did first; returns the installed one.
fn install<T>(at: &AtomicPtr<T>) -> &T {
    let current = at.load(Ordering::Acquire);
    if !current.is_null() {
        // SAFETY: installed pointers come from `Box::into_raw` and live as long as the set.
        return unsafe { &*current };
    }
    let fresh = Box::into_raw(boxed_zeroed::<T>());
    match at.compare_exchange(
        std::ptr::null_mut(),
        fresh,
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        // SAFETY: as above; the loser frees only its own, never-shared allocation.
        Ok(_) => unsafe { &*fresh },
        Err(winner) => unsafe {
            drop(Box::from_raw(fresh));
            &*winner
        },
    }
}

/// Set of object addresses (8-aligned) handing out [`Code`]s. Insertions may come from
/// several threads at once (the walk's helper): membership bits are set with `fetch_or`,
/// pages get their slot by compare-and-swap, and nothing is ever moved or freed while the
/// set lives, so readers need no lock.
pub struct NodeSet {
    /// Per 2 GiB region, a leaf holding `slot + 1` per page, 0 if none.
    regions: Box<[AtomicPtr<[AtomicU32; LEAF_LEN]>]>,
    chunks: Box<[AtomicPtr<Chunk>]>,
    /// Slots handed out so far. A slot lost in a race for the same page stays empty.
    next_slot: AtomicU32,
}

impl Default for NodeSet {
    fn default() -> Self {
        NodeSet {
            regions: null_pointers(REGIONS),
            chunks: null_pointers(CHUNKS),
            next_slot: AtomicU32::new(0),
        }
    }
}

impl Drop for NodeSet {
    fn drop(&mut self) {
        for region in self.regions.iter() {
            let leaf = region.load(Ordering::Acquire);
            if !leaf.is_null() {
                // SAFETY: installed by `install` from `Box::into_raw`, freed once here.
                drop(unsafe { Box::from_raw(leaf) });
            }
        }
        for chunk in self.chunks.iter() {
            let chunk = chunk.load(Ordering::Acquire);
            if !chunk.is_null() {
                // SAFETY: as above.
                drop(unsafe { Box::from_raw(chunk) });
            }
        }
    }
}

/// One thread's memory of the last page it inserted into: consecutive insertions mostly
/// hit the same page, and then skip the directory.
#[derive(Default, Clone, Copy)]
pub struct PageCache {
    /// (page, slot, the page's bitmap in the set).
    last: Option<(usize, u32, *const [AtomicU64; WORDS_PER_PAGE])>,
}

impl NodeSet {
    #[inline]
    fn chunk(&self, slot: u32) -> Option<&Chunk> {
        let chunk = self.chunks.get((slot >> CHUNK_SHIFT) as usize)?;
        let chunk = chunk.load(Ordering::Acquire);
        // SAFETY: installed chunks live as long as the set.
        (!chunk.is_null()).then(|| unsafe { &*chunk })
    }

    #[inline]
    fn leaf(&self, page: usize) -> Option<&[AtomicU32; LEAF_LEN]> {
        let leaf = self
            .regions
            .get(page >> LEAF_SHIFT)?
            .load(Ordering::Acquire);
        // SAFETY: installed leaves live as long as the set.
        (!leaf.is_null()).then(|| unsafe { &*leaf })
    }

    #[cold]
    fn claim_slot(&self, page: usize) -> Result<u32, OutOfRange> {
        let region = self.regions.get(page >> LEAF_SHIFT).ok_or(OutOfRange)?;
        let entry = &install(region)[page & (LEAF_LEN - 1)];
        let known = entry.load(Ordering::Acquire);
        if known != 0 {
            return Ok(known - 1);
        }
        let slot = self.next_slot.fetch_add(1, Ordering::Relaxed);
        let chunk = self
            .chunks
            .get((slot >> CHUNK_SHIFT) as usize)
            .ok_or(OutOfRange)?;
        install(chunk).page[slot as usize & (CHUNK_PAGES - 1)].store(page, Ordering::Relaxed);
        // The page number is published with the slot (release), so that whoever reads
        // the slot can turn its codes back into addresses.
        match entry.compare_exchange(0, slot + 1, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => Ok(slot),
            Err(winner) => Ok(winner - 1),
        }
    }

    /// The slot and bitmap of `page`, claimed if new.
    #[inline]
    fn page_bits(
        &self,
        cache: &mut PageCache,
        page: usize,
    ) -> Result<(u32, &[AtomicU64; WORDS_PER_PAGE]), OutOfRange> {
        if let Some((p, slot, bits)) = cache.last {
            if p == page {
                // SAFETY: the cache is only ever filled from this set's own chunks, which
                // live (and stay in place) as long as the set.
                return Ok((slot, unsafe { &*bits }));
            }
        }
        let slot = match self.find_slot(page) {
            Some(slot) => slot,
            None => self.claim_slot(page)?,
        };
        let bits = &self.chunk(slot).ok_or(OutOfRange)?.bits[slot as usize & (CHUNK_PAGES - 1)];
        cache.last = Some((page, slot, bits));
        Ok((slot, bits))
    }

    #[inline]
    fn find_slot(&self, page: usize) -> Option<u32> {
        match self.leaf(page)?[page & (LEAF_LEN - 1)].load(Ordering::Acquire) {
            0 => None,
            s => Some(s - 1),
        }
    }

    #[inline]
    fn word(&self, slot: u32, granule: usize) -> Option<&AtomicU64> {
        Some(&self.chunk(slot)?.bits[slot as usize & (CHUNK_PAGES - 1)][granule >> 6])
    }

    /// Inserts `address` (remembering its page in `cache`, which must be used with this
    /// set only); returns its code and whether
    /// it was new. Of two threads inserting the same address, exactly one is told it is new.
    #[inline]
    pub fn insert_cached(
        &self,
        cache: &mut PageCache,
        address: usize,
    ) -> Result<(Code, bool), OutOfRange> {
        let (slot, bits) = self.page_bits(cache, address >> PAGE_SHIFT)?;
        let granule = (address >> GRANULE_SHIFT) & GRANULE_MASK;
        let word = &bits[granule >> 6];
        let bit = 1u64 << (granule & 63);
        // A plain load first: most insertions find a known member, and a locked
        // read-modify-write would stall the loads in flight.
        let new = word.load(Ordering::Relaxed) & bit == 0
            && word.fetch_or(bit, Ordering::Relaxed) & bit == 0;
        Ok(((u64::from(slot) << GRANULE_BITS) | granule as u64, new))
    }

    /// [`NodeSet::insert_cached`] without a cache.
    pub fn insert(&self, address: usize) -> Result<(Code, bool), OutOfRange> {
        self.insert_cached(&mut PageCache::default(), address)
    }

    /// The address of the member with this code (`code` must come from this set).
    #[inline]
    pub fn address_of(&self, code: Code) -> usize {
        let slot = (code >> GRANULE_BITS) as u32;
        let page = self.chunk(slot).map_or(0, |chunk| {
            chunk.page[slot as usize & (CHUNK_PAGES - 1)].load(Ordering::Relaxed)
        });
        (page << PAGE_SHIFT) | ((code as usize & GRANULE_MASK) << GRANULE_SHIFT)
    }

    /// Whether `address` was inserted.
    pub fn contains(&self, address: usize) -> bool {
        self.code_of(address).is_some()
    }

    /// The code of a member, `None` for an address never inserted.
    pub fn code_of(&self, address: usize) -> Option<Code> {
        let slot = self.find_slot(address >> PAGE_SHIFT)?;
        let granule = (address >> GRANULE_SHIFT) & GRANULE_MASK;
        let word = self.word(slot, granule)?.load(Ordering::Relaxed);
        (word & (1u64 << (granule & 63)) != 0)
            .then_some((u64::from(slot) << GRANULE_BITS) | granule as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The codes are what a snapshot stores as node keys: the reader must be able to
    /// index them, each to its own node.
    pub(super) fn assert_indexable(codes: &[Code]) {
        let index = heapsight_snapshot::KeyIndex::new(codes).expect("indexable keys");
        for (node, &code) in codes.iter().enumerate() {
            assert_eq!(index.node(code).map(|n| n.index()), Some(node));
        }
    }

    #[test]
    fn dedupes_and_numbers_every_member_once() {
        let set = NodeSet::default();
        let addrs = [
            0x7f00_0010_0040usize,
            0x1000,
            0x7f00_0010_0010,
            0x1010,
            0x5555_0000_0008,
            0x7fff_ffff_fff8,
        ];
        let codes: Vec<Code> = addrs
            .iter()
            .map(|&a| set.insert(a).expect("in range"))
            .map(|(c, new)| {
                assert!(new);
                c
            })
            .collect();
        assert_eq!(set.insert(0x1000), Ok((codes[1], false)));
        assert_eq!(set.code_of(0x2000), None);
        assert_eq!(set.code_of(0x1018), None);
        for (&address, &code) in addrs.iter().zip(&codes) {
            assert_eq!(set.code_of(address), Some(code));
        }
        assert_indexable(&codes);
    }

    #[test]
    fn dense_pages_give_indexable_codes() {
        let set = NodeSet::default();
        let base = 0x10_0000usize;
        let codes: Vec<Code> = (0..20_000usize)
            .map(|i| {
                let (code, new) = set.insert(base + i * 16).expect("in range");
                assert!(new);
                code
            })
            .collect();
        assert_indexable(&codes);
    }

    #[test]
    fn codes_give_their_addresses_back() {
        let set = NodeSet::default();
        let addresses = [0x10, 0x7f00_0000_1008, 0x5555_0000_fff8, 0x7f00_0001_0000];
        let codes: Vec<Code> = addresses
            .iter()
            .map(|&a| set.insert(a).expect("in range").0)
            .collect();
        for (&address, &code) in addresses.iter().zip(&codes) {
            assert_eq!(set.address_of(code), address);
        }
    }

    #[test]
    fn sorted_codes_group_members_by_page() {
        let set = NodeSet::default();
        // Interleaved pages, as discovery order scatters them.
        let mut codes: Vec<Code> = (0..64usize)
            .map(|i| {
                set.insert(((i % 4) << 20) + 0x1000 + (i / 4) * 16)
                    .expect("in range")
                    .0
            })
            .collect();
        codes.sort_unstable();
        let mut runs: Vec<usize> = codes.iter().map(|&c| set.address_of(c) >> 16).collect();
        runs.dedup();
        assert_eq!(runs.len(), 4, "each page in one run: {runs:?}");
        let within_first_page: Vec<usize> =
            codes[..16].iter().map(|&c| set.address_of(c)).collect();
        assert!(within_first_page.windows(2).all(|w| w[0] < w[1]));
    }
}

#[cfg(test)]
mod concurrent_tests {
    use super::*;

    #[test]
    fn two_threads_inserting_the_same_addresses_each_member_is_new_once() {
        let set = NodeSet::default();
        // Many pages touched by both threads at once, so slots are raced for too.
        let addresses: Vec<usize> = (0..200_000usize)
            .map(|i| 0x7f00_0000_0000 + (i % 4000) * 0x1_0000 + (i / 4000) * 8)
            .collect();
        let new_counts: Vec<usize> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..2)
                .map(|t| {
                    let set = &set;
                    let addresses = &addresses;
                    scope.spawn(move || {
                        let mut cache = PageCache::default();
                        let mut new = 0usize;
                        let order: Box<dyn Iterator<Item = &usize>> = if t == 0 {
                            Box::new(addresses.iter())
                        } else {
                            Box::new(addresses.iter().rev())
                        };
                        for &a in order {
                            let (code, fresh) = set.insert_cached(&mut cache, a).expect("in range");
                            assert_eq!(set.address_of(code), a);
                            new += usize::from(fresh);
                        }
                        new
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().expect("worker"))
                .collect()
        });
        assert_eq!(new_counts.iter().sum::<usize>(), addresses.len());
        let codes: Vec<Code> = addresses
            .iter()
            .map(|&a| set.code_of(a).expect("member"))
            .collect();
        // Distinct codes, and within what the reader accepts despite the slots raced for.
        super::tests::assert_indexable(&codes);
    }

    #[test]
    fn addresses_beyond_the_directory_are_refused_not_stored() {
        let set = NodeSet::default();
        assert_eq!(set.insert(1usize << 60), Err(OutOfRange));
        assert!(!set.contains(1usize << 60));
    }
}
