//! The walk's set of discovered objects, and the compact codes its edges store.
//!
//! One bit per 8-byte granule of address space, in a bitmap per 64 KiB page. A page is found
//! through a two-level directory (a few 2 GiB regions, then an array indexed by page), so
//! neither an insertion nor a lookup hashes. Each member gets a [`Code`], its page's slot
//! and its granule in 32 bits while the heap touches fewer than 2^19 pages (32 GiB): edges
//! keep that code instead of a 64-bit address, and once the walk is complete a code turns
//! into a dense number with no lookup at all.

const GRANULE_SHIFT: u32 = 3;
const PAGE_SHIFT: u32 = 16;
const GRANULE_BITS: u32 = PAGE_SHIFT - GRANULE_SHIFT;
const GRANULE_MASK: usize = (1 << GRANULE_BITS) - 1;
const WORDS_PER_PAGE: usize = 1 << (GRANULE_BITS - 6);
/// Pages per directory leaf (2 GiB of address space per leaf).
const LEAF_SHIFT: u32 = 15;
const LEAF_LEN: usize = 1 << LEAF_SHIFT;

/// A member as `slot << 13 | granule`.
pub type Code = u64;

/// Set of object addresses (8-aligned) handing out [`Code`]s.
#[derive(Default)]
pub struct NodeSet {
    /// (region number, leaf): the leaf holds `slot + 1` per page of the region, 0 if none.
    regions: Vec<(usize, Box<[u32]>)>,
    last_region: Option<usize>,
    bits: Vec<[u64; WORDS_PER_PAGE]>,
    /// The page of each slot, so that a code gives its address back.
    page_of_slot: Vec<usize>,
    last_page: Option<(usize, u32)>,
    len: usize,
}

impl NodeSet {
    #[inline]
    fn region_index(&mut self, region: usize) -> usize {
        if let Some(i) = self.last_region {
            if self.regions[i].0 == region {
                return i;
            }
        }
        let i = match self.regions.iter().position(|(r, _)| *r == region) {
            Some(i) => i,
            None => {
                self.regions
                    .push((region, vec![0u32; LEAF_LEN].into_boxed_slice()));
                self.regions.len() - 1
            }
        };
        self.last_region = Some(i);
        i
    }

    #[inline]
    fn slot_of(&mut self, page: usize) -> u32 {
        if let Some((p, slot)) = self.last_page {
            if p == page {
                return slot;
            }
        }
        let r = self.region_index(page >> LEAF_SHIFT);
        let entry = &mut self.regions[r].1[page & (LEAF_LEN - 1)];
        let slot = if *entry == 0 {
            let slot = self.bits.len() as u32;
            *entry = slot + 1;
            self.bits.push([0; WORDS_PER_PAGE]);
            self.page_of_slot.push(page);
            slot
        } else {
            *entry - 1
        };
        self.last_page = Some((page, slot));
        slot
    }

    #[inline]
    fn find_slot(&self, page: usize) -> Option<u32> {
        let region = page >> LEAF_SHIFT;
        let (_, leaf) = self.regions.iter().find(|(r, _)| *r == region)?;
        match leaf[page & (LEAF_LEN - 1)] {
            0 => None,
            s => Some(s - 1),
        }
    }

    /// Inserts `address`; returns its code and whether it was new.
    #[inline]
    pub fn insert(&mut self, address: usize) -> (Code, bool) {
        let slot = self.slot_of(address >> PAGE_SHIFT);
        let granule = (address >> GRANULE_SHIFT) & GRANULE_MASK;
        let word = &mut self.bits[slot as usize][granule >> 6];
        let bit = 1u64 << (granule & 63);
        let new = *word & bit == 0;
        *word |= bit;
        self.len += usize::from(new);
        ((u64::from(slot) << GRANULE_BITS) | granule as u64, new)
    }

    /// The address of the member with this code (`code` must come from this set).
    #[inline]
    pub fn address_of(&self, code: Code) -> usize {
        let page = self.page_of_slot[(code >> GRANULE_BITS) as usize];
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
        let word = self.bits[slot as usize][granule >> 6];
        (word & (1u64 << (granule & 63)) != 0)
            .then_some((u64::from(slot) << GRANULE_BITS) | granule as u64)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Freezes the set: every member gets a dense number below `len()`.
    pub fn into_numbered(self) -> NumberedSet {
        let mut base = Vec::with_capacity(self.bits.len());
        let mut prefix = Vec::with_capacity(self.bits.len());
        let mut running = 0u32;
        for page in &self.bits {
            base.push(running);
            let mut within = [0u16; WORDS_PER_PAGE];
            let mut count = 0u32;
            for (w, word) in page.iter().enumerate() {
                within[w] = count as u16;
                count += word.count_ones();
            }
            prefix.push(within);
            running += count;
        }
        NumberedSet {
            set: self,
            base,
            prefix,
        }
    }
}

/// A complete [`NodeSet`] whose members are numbered `0..len()` (page slot order).
pub struct NumberedSet {
    set: NodeSet,
    base: Vec<u32>,
    /// Members in the earlier words of each page (at most 8192, so u16).
    prefix: Vec<[u16; WORDS_PER_PAGE]>,
}

impl NumberedSet {
    pub fn len(&self) -> usize {
        self.set.len
    }

    /// The number of the member with this code, `None` when the code names no member.
    #[inline]
    pub fn number_of_code(&self, code: Code) -> Option<u32> {
        let slot = usize::try_from(code >> GRANULE_BITS).ok()?;
        let granule = code as usize & GRANULE_MASK;
        let word = *self.set.bits.get(slot)?.get(granule >> 6)?;
        let bit = 1u64 << (granule & 63);
        if word & bit == 0 {
            return None;
        }
        let below = (word & (bit - 1)).count_ones();
        Some(self.base[slot] + u32::from(self.prefix[slot][granule >> 6]) + below)
    }

    #[inline]
    pub fn number_of(&self, address: usize) -> Option<u32> {
        self.number_of_code(self.set.code_of(address)?)
    }
}

/// Edge targets as codes: 4 bytes each while every code fits in 32 bits, 8 after.
pub enum CodeColumn {
    Narrow(Vec<u32>),
    Wide(Vec<u64>),
}

impl Default for CodeColumn {
    fn default() -> Self {
        CodeColumn::Narrow(Vec::new())
    }
}

impl CodeColumn {
    #[inline]
    pub fn push(&mut self, code: Code) {
        match self {
            CodeColumn::Narrow(v) => match u32::try_from(code) {
                Ok(c) => v.push(c),
                Err(_) => {
                    self.widen();
                    self.push(code);
                }
            },
            CodeColumn::Wide(v) => v.push(code),
        }
    }

    #[cold]
    fn widen(&mut self) {
        if let CodeColumn::Narrow(v) = self {
            let wide = v.iter().map(|&c| u64::from(c)).collect();
            *self = CodeColumn::Wide(wide);
        }
    }

    /// Calls `f` with each position and code, in order (one loop per width, so that `f`
    /// is inlined into it).
    pub fn for_each(&self, mut f: impl FnMut(usize, Code)) {
        match self {
            CodeColumn::Narrow(v) => v.iter().enumerate().for_each(|(i, &c)| f(i, c.into())),
            CodeColumn::Wide(v) => v.iter().enumerate().for_each(|(i, &c)| f(i, c)),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            CodeColumn::Narrow(v) => v.len(),
            CodeColumn::Wide(v) => v.len(),
        }
    }

    pub fn shrink_to_fit(&mut self) {
        match self {
            CodeColumn::Narrow(v) => v.shrink_to_fit(),
            CodeColumn::Wide(v) => v.shrink_to_fit(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedupes_and_numbers_every_member_once() {
        let mut set = NodeSet::default();
        let addrs = [
            0x7f00_0010_0040usize,
            0x1000,
            0x7f00_0010_0010,
            0x1010,
            0x5555_0000_0008,
            0x1_0000_0000_0000,
        ];
        let codes: Vec<Code> = addrs
            .iter()
            .map(|&a| set.insert(a))
            .map(|(c, new)| {
                assert!(new);
                c
            })
            .collect();
        assert_eq!(set.insert(0x1000), (codes[1], false));
        assert_eq!(set.len(), addrs.len());
        assert_eq!(set.code_of(0x2000), None);
        assert_eq!(set.code_of(0x1018), None);
        let numbered = set.into_numbered();
        let mut numbers: Vec<u32> = addrs
            .iter()
            .zip(&codes)
            .map(|(&a, &c)| {
                let n = numbered.number_of(a).expect("member");
                assert_eq!(numbered.number_of_code(c), Some(n));
                n
            })
            .collect();
        numbers.sort_unstable();
        assert_eq!(numbers, (0..addrs.len() as u32).collect::<Vec<_>>());
        assert_eq!(numbered.number_of(0x3000), None);
    }

    #[test]
    fn dense_pages_number_densely() {
        let mut set = NodeSet::default();
        let base = 0x10_0000usize;
        for i in 0..20_000usize {
            assert!(set.insert(base + i * 16).1);
        }
        let numbered = set.into_numbered();
        let mut seen = vec![false; 20_000];
        for i in 0..20_000usize {
            let n = numbered.number_of(base + i * 16).expect("member") as usize;
            assert!(!seen[n]);
            seen[n] = true;
        }
    }

    #[test]
    fn codes_give_their_addresses_back() {
        let mut set = NodeSet::default();
        let addresses = [0x10, 0x7f00_0000_1008, 0x5555_0000_fff8, 0x7f00_0001_0000];
        let codes: Vec<Code> = addresses.iter().map(|&a| set.insert(a).0).collect();
        for (&address, &code) in addresses.iter().zip(&codes) {
            assert_eq!(set.address_of(code), address);
        }
    }

    #[test]
    fn sorted_codes_group_members_by_page() {
        let mut set = NodeSet::default();
        // Interleaved pages, as discovery order scatters them.
        let mut codes: Vec<Code> = (0..64usize)
            .map(|i| set.insert(((i % 4) << 20) + 0x1000 + (i / 4) * 16).0)
            .collect();
        codes.sort_unstable();
        let mut runs: Vec<usize> = codes.iter().map(|&c| set.address_of(c) >> 16).collect();
        runs.dedup();
        assert_eq!(runs.len(), 4, "each page in one run: {runs:?}");
        let within_first_page: Vec<usize> =
            codes[..16].iter().map(|&c| set.address_of(c)).collect();
        assert!(within_first_page.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn code_column_widens_without_losing_codes() {
        let mut column = CodeColumn::default();
        column.push(7);
        column.push(u64::from(u32::MAX) + 5);
        column.push(9);
        let mut visited = Vec::new();
        column.for_each(|i, code| visited.push((i, code)));
        assert_eq!(visited, vec![(0, 7), (1, u64::from(u32::MAX) + 5), (2, 9)]);
        match column {
            CodeColumn::Wide(v) => assert_eq!(v, vec![7, u64::from(u32::MAX) + 5, 9]),
            CodeColumn::Narrow(_) => panic!("should have widened"),
        }
    }
}
