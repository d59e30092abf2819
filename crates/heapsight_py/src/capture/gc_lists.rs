//! Enumerating every gc-tracked object, frozen ones included, and sets of object addresses.
//!
//! `gc.get_objects()` omits the permanent generation (`gc.freeze()`), so the primary method
//! reads the generation rings of `struct _gc_runtime_state` directly. We never guess where
//! that struct is: a freshly created list is the last object tracked, so its `_gc_next`
//! points at the generation-0 list head, and the layout around that head is verified
//! against what the `gc` module reports (thresholds, enabled, debug flags, the
//! `generation0` pointer, the frozen count) before any ring is walked. When verification
//! fails (other layouts, such as free-threaded builds), the
//! caller falls back to `gc.get_objects()` and finds frozen objects by closure.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;

use pyo3::exceptions::PyRuntimeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyList;

use super::nodeset::NodeSet;

/// `PyGC_Head` of the default (GIL) build, 3.9 to 3.14: it sits right before the object.
#[repr(C)]
struct GcHead {
    next: usize,
    prev: usize,
}

/// What every heap capture and count says on a free-threaded build.
pub const FREE_THREADED_REFUSAL: &str =
    "heapsight cannot read the heap of a free-threaded CPython build (3.14t) yet: its object \
     header and reference counts differ, and other threads keep running during a walk. Run \
     the application on a standard CPython build (python3.x, not python3.xt) to capture it; \
     snapshot files and reports still work here.";

const GC_HEAD_BYTES: usize = std::mem::size_of::<GcHead>();
/// Low bits of `_gc_next`/`_gc_prev` that carry collector flags rather than address bits.
const LINK_FLAG_BITS: usize = 0b11;
/// `sizeof(struct gc_generation)` on 64-bit: a `PyGC_Head`, then `int threshold, count`.
const GENERATION_BYTES: usize = 24;
const N_GENERATIONS: usize = 3;
/// Offset of `PyGC_Head *generation0` from the first generation's head (3.9 to 3.13).
const GENERATION0_POINTER_OFFSET: usize = N_GENERATIONS * GENERATION_BYTES;

/// Offset of `permanent_generation` from the first generation's head. 3.9 to 3.13 keep a
/// `generation0` pointer in between; 3.14 dropped it (its incremental collector named the
/// three rings `young` and `old[2]`, and 3.14.x releases that reverted to generations kept
/// the same offsets).
fn permanent_offset(minor: u8) -> usize {
    if minor >= 14 {
        N_GENERATIONS * GENERATION_BYTES
    } else {
        GENERATION0_POINTER_OFFSET + std::mem::size_of::<usize>()
    }
}
/// `int enabled` and `int debug` precede `generations` (after `trash_delete_later` and
/// `trash_delete_nesting`): offsets counted back from the first generation's head.
const ENABLED_BACK_OFFSET: usize = 12;
const DEBUG_BACK_OFFSET: usize = 8;

/// Whether `op` is tracked by the cycle collector right now.
///
/// # Safety
/// `op` must point to a live object and the GIL must be held.
#[inline]
pub unsafe fn is_gc_tracked(op: *mut ffi::PyObject) -> bool {
    // SAFETY: forwarded from the caller.
    unsafe { ffi::PyObject_IS_GC(op) != 0 && is_linked(op) }
}

/// Whether a gc object (`PyObject_IS_GC`) is in one of the collector's rings right now.
///
/// # Safety
/// As [`is_gc_tracked`], and `op` a gc object.
#[inline]
pub unsafe fn is_linked(op: *mut ffi::PyObject) -> bool {
    if cfg!(Py_GIL_DISABLED) {
        return false;
    }
    // SAFETY: gc objects carry a PyGC_Head right before them.
    unsafe { (*gc_head_of(op)).next != 0 }
}

#[inline]
unsafe fn gc_head_of(op: *mut ffi::PyObject) -> *const GcHead {
    // SAFETY: caller guarantees `op` is a gc object, so the head precedes it.
    unsafe { (op as *const u8).sub(GC_HEAD_BYTES) as *const GcHead }
}

#[inline]
fn object_of(head: usize) -> *mut ffi::PyObject {
    (head + GC_HEAD_BYTES) as *mut ffi::PyObject
}

/// The verified list heads of the three generations and of the permanent generation.
pub struct GcRings {
    generation_heads: [usize; N_GENERATIONS],
    permanent_head: usize,
}

/// Disables the cycle collector for the lifetime of the guard and restores it after.
pub struct GcPause<'py> {
    gc: Bound<'py, PyModule>,
    was_enabled: bool,
}

impl<'py> GcPause<'py> {
    /// Every capture and count starts here, so this is also where a free-threaded build
    /// is refused: its objects have another header, its reference counts are split and
    /// deferred, and its other threads keep running during a walk, so reading the heap
    /// the way the walk does could crash the process instead of measuring it.
    pub fn new(py: Python<'py>) -> PyResult<Self> {
        if cfg!(Py_GIL_DISABLED) {
            return Err(PyRuntimeError::new_err(FREE_THREADED_REFUSAL));
        }
        let gc = py.import("gc")?;
        let was_enabled: bool = gc.call_method0("isenabled")?.extract()?;
        gc.call_method0("disable")?;
        Ok(GcPause { gc, was_enabled })
    }

    pub fn gc_module(&self) -> &Bound<'py, PyModule> {
        &self.gc
    }
}

impl Drop for GcPause<'_> {
    fn drop(&mut self) {
        if self.was_enabled {
            // Enabling cannot fail in practice; a failure leaves gc disabled, which is safe.
            let _ = self.gc.call_method0("enable");
        }
    }
}

impl GcRings {
    /// Locates and verifies the generation rings. Returns `None` when the interpreter's
    /// layout is not the one verified here. The collector must be disabled (see
    /// [`GcPause`]) so that no collection moves objects between rings meanwhile.
    pub fn locate(pause: &GcPause<'_>) -> PyResult<Option<GcRings>> {
        let py = pause.gc.py();
        let version = py.version_info();
        if cfg!(Py_GIL_DISABLED) || (version.major, version.minor) < (3, 9) {
            return Ok(None);
        }
        if (version.major, version.minor) > (3, 14) {
            return Ok(None);
        }
        let has_generation0_pointer = version.minor < 14;
        let gc = &pause.gc;
        let thresholds: (i32, i32, i32) = gc.call_method0("get_threshold")?.extract()?;
        let debug: i32 = gc.call_method0("get_debug")?.extract()?;
        let enabled: bool = gc.call_method0("isenabled")?.extract()?;
        let freeze_count: usize = gc.call_method0("get_freeze_count")?.extract()?;
        let probe = PyList::empty(py);
        // SAFETY: the probe is a live, tracked list; every read below is of a PyGC_Head
        // reachable from it, then of fields of the verified runtime state.
        let rings = unsafe {
            let probe_head = gc_head_of(probe.as_ptr()) as usize;
            let head0 = (*(probe_head as *const GcHead)).next & !LINK_FLAG_BITS;
            if head0 == 0 {
                return Ok(None);
            }
            // The probe was tracked last, so it is the tail of generation 0: the head's
            // `_gc_prev` points back at it.
            if (*(head0 as *const GcHead)).prev & !LINK_FLAG_BITS != probe_head {
                return Ok(None);
            }
            let read_int = |addr: usize| *(addr as *const i32);
            let generation0_matches = !has_generation0_pointer
                || *((head0 + GENERATION0_POINTER_OFFSET) as *const usize) == head0;
            let layout_matches = generation0_matches
                && read_int(head0 - ENABLED_BACK_OFFSET) == i32::from(enabled)
                && read_int(head0 - DEBUG_BACK_OFFSET) == debug
                && read_int(head0 + 16) == thresholds.0
                && read_int(head0 + GENERATION_BYTES + 16) == thresholds.1
                && read_int(head0 + 2 * GENERATION_BYTES + 16) == thresholds.2;
            if !layout_matches {
                return Ok(None);
            }
            GcRings {
                generation_heads: [
                    head0,
                    head0 + GENERATION_BYTES,
                    head0 + 2 * GENERATION_BYTES,
                ],
                permanent_head: head0 + permanent_offset(version.minor),
            }
        };
        drop(probe);
        let mut n_permanent = 0usize;
        // SAFETY: GIL held, gc disabled, rings verified above.
        unsafe { rings.walk_ring(rings.permanent_head, &mut |_| n_permanent += 1) };
        if n_permanent != freeze_count {
            return Ok(None);
        }
        Ok(Some(rings))
    }

    /// Calls `visit(object, frozen)` for every tracked object: generations 0 to 2, then the
    /// permanent generation.
    ///
    /// # Safety
    /// GIL held and gc disabled since `locate`; `visit` must not create, track or free any
    /// Python object (the rings would change under the walk).
    pub unsafe fn for_each(&self, mut visit: impl FnMut(*mut ffi::PyObject, bool)) {
        for head in self.generation_heads {
            // SAFETY: forwarded from the caller.
            unsafe { self.walk_ring(head, &mut |op| visit(op, false)) };
        }
        // SAFETY: forwarded from the caller.
        unsafe { self.walk_ring(self.permanent_head, &mut |op| visit(op, true)) };
    }

    /// Calls `visit(object)` for every object of the permanent generation.
    ///
    /// # Safety
    /// As [`GcRings::for_each`].
    pub unsafe fn for_each_permanent(&self, mut visit: impl FnMut(*mut ffi::PyObject)) {
        // SAFETY: forwarded from the caller.
        unsafe { self.walk_ring(self.permanent_head, &mut visit) };
    }

    /// Visits a ring in its order (the order of allocation, mostly), which keeps the
    /// visits of a census close in memory and on one type after another: from both ends
    /// at once, as the walk takes its chunks, the census took 1.5x as long.
    unsafe fn walk_ring(&self, head: usize, visit: &mut dyn FnMut(*mut ffi::PyObject)) {
        // SAFETY: the ring is a valid circular list while the GIL is held and gc disabled.
        unsafe {
            let mut node = next_in_ring(head);
            while node != head && node != 0 {
                visit(object_of(node));
                node = next_in_ring(node);
            }
        }
    }

    /// The rings in the order [`GcRings::for_each`] visits them.
    fn heads(&self) -> [usize; N_GENERATIONS + 1] {
        let [g0, g1, g2] = self.generation_heads;
        [g0, g1, g2, self.permanent_head]
    }
}

/// The gc head after `node` in its ring.
///
/// # Safety
/// `node` a head in a ring that cannot change (GIL held, gc disabled).
#[inline]
unsafe fn next_in_ring(node: usize) -> usize {
    // SAFETY: forwarded from the caller.
    unsafe { (*(node as *const GcHead)).next & !LINK_FLAG_BITS }
}

/// The gc head before `node` in its ring (`_gc_prev` keeps two flag bits on 3.9 to 3.14).
///
/// # Safety
/// As [`next_in_ring`].
#[inline]
unsafe fn prev_in_ring(node: usize) -> usize {
    // SAFETY: forwarded from the caller.
    unsafe { (*(node as *const GcHead)).prev & !LINK_FLAG_BITS }
}

/// The gc heads of a ring still to be handed out: from `front` on along `_gc_next` up to
/// and including `back`. They are taken from both ends at once because each step of a
/// ring is a load that misses the cache and that the next step depends on: following
/// `_gc_next` from the front and `_gc_prev` from the back keeps two such loads in flight,
/// where one chain would wait on each in turn (filling the walk's chunks took 145 ms
/// instead of about 210 at 3M objects, bench/RESULTS.md run 13).
#[derive(Clone, Copy)]
struct RingSegment {
    front: usize,
    back: usize,
}

impl RingSegment {
    /// Every object of the ring of `head`; `None` when it has none.
    ///
    /// # Safety
    /// As [`next_in_ring`].
    #[inline]
    unsafe fn whole(head: usize) -> Option<Self> {
        // SAFETY: forwarded from the caller.
        let (front, back) = unsafe { (next_in_ring(head), prev_in_ring(head)) };
        let empty = front == head || front == 0 || back == head || back == 0;
        (!empty).then_some(RingSegment { front, back })
    }

    /// Visits the first and the last gc head of the segment (the one left, at the end),
    /// and returns the heads between them. A null link, which a valid ring never holds,
    /// ends the segment.
    ///
    /// # Safety
    /// As [`next_in_ring`].
    #[inline]
    unsafe fn take_ends(self, visit: &mut impl FnMut(usize)) -> Option<Self> {
        let RingSegment { front, back } = self;
        visit(front);
        if front == back {
            return None;
        }
        visit(back);
        // SAFETY: forwarded from the caller.
        let (after_front, before_back) = unsafe { (next_in_ring(front), prev_in_ring(back)) };
        let done = after_front == back || after_front == 0 || before_back == 0;
        (!done).then_some(RingSegment {
            front: after_front,
            back: before_back,
        })
    }
}

/// The tracked objects of a [`TrackedSource`] handed out in chunks, to whichever walking
/// thread asks next. Holds addresses only, so the threads can share it.
pub struct TrackedChunks {
    from: ChunkSource,
    cursor: Mutex<ChunkCursor>,
}

enum ChunkSource {
    Rings([usize; N_GENERATIONS + 1]),
    /// `ob_item` and length of the `gc.get_objects()` list, and the list itself (skipped).
    List {
        items: usize,
        len: usize,
        own: usize,
    },
}

#[derive(Default)]
struct ChunkCursor {
    /// Ring being read (`Rings`).
    ring: usize,
    /// What that ring has left to hand out; `None` before its first.
    rest: Option<RingSegment>,
    /// Next list index (`List`).
    index: usize,
}

impl TrackedChunks {
    /// Fills `out` with up to `max` more tracked objects; `false` once none are left.
    ///
    /// # Safety
    /// As [`GcRings::for_each`], for as long as any thread takes chunks.
    pub unsafe fn next_chunk(&self, out: &mut Vec<*mut ffi::PyObject>, max: usize) -> bool {
        out.clear();
        let mut cursor = self
            .cursor
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match &self.from {
            ChunkSource::Rings(heads) => {
                // Two at a time, so `max` may be passed by one.
                while out.len() < max && cursor.ring < heads.len() {
                    // SAFETY: a verified ring head; forwarded from the caller.
                    let mut rest = match cursor.rest {
                        Some(segment) => Some(segment),
                        None => unsafe { RingSegment::whole(heads[cursor.ring]) },
                    };
                    while let Some(segment) = rest.filter(|_| out.len() < max) {
                        // SAFETY: as above.
                        rest = unsafe { segment.take_ends(&mut |node| out.push(object_of(node))) };
                    }
                    if rest.is_none() {
                        cursor.ring += 1;
                    }
                    cursor.rest = rest;
                }
            }
            &ChunkSource::List { items, len, own } => {
                let end = len.min(cursor.index.saturating_add(max));
                for i in cursor.index..end {
                    // SAFETY: in range of the list's storage, which is not mutated while
                    // the walk runs.
                    let op = unsafe { *(items as *const *mut ffi::PyObject).add(i) };
                    if op as usize != own && !op.is_null() {
                        out.push(op);
                    }
                }
                cursor.index = end;
            }
        }
        !out.is_empty() || self.has_more(&cursor)
    }

    fn has_more(&self, cursor: &ChunkCursor) -> bool {
        match &self.from {
            ChunkSource::Rings(heads) => cursor.ring < heads.len(),
            ChunkSource::List { len, .. } => cursor.index < *len,
        }
    }
}

/// Where the tracked objects come from.
pub enum TrackedSource<'py> {
    /// The verified generation rings (frozen objects included).
    Rings(GcRings),
    /// `gc.get_objects()`: frozen objects are missing and must be found by closure. The
    /// list holds one reference to each object it lists.
    Listed(Bound<'py, PyList>),
}

impl<'py> TrackedSource<'py> {
    pub fn open(pause: &GcPause<'py>) -> PyResult<Self> {
        if let Some(rings) = GcRings::locate(pause)? {
            return Ok(TrackedSource::Rings(rings));
        }
        let list = pause
            .gc
            .call_method0("get_objects")?
            .cast_into::<PyList>()?;
        Ok(TrackedSource::Listed(list))
    }

    /// The capture's own object that the enumeration itself created, if any.
    pub fn own_object(&self) -> Option<*mut ffi::PyObject> {
        match self {
            TrackedSource::Rings(_) => None,
            TrackedSource::Listed(list) => Some(list.as_ptr()),
        }
    }

    /// The tracked objects, to be taken in chunks by one or more threads.
    pub fn chunks(&self) -> TrackedChunks {
        let from = match self {
            TrackedSource::Rings(rings) => ChunkSource::Rings(rings.heads()),
            TrackedSource::Listed(list) => ChunkSource::List {
                // SAFETY: a live list; its storage pointer and length are only read.
                items: unsafe { (*(list.as_ptr() as *mut ffi::PyListObject)).ob_item as usize },
                len: list.len(),
                own: list.as_ptr() as usize,
            },
        };
        TrackedChunks {
            from,
            cursor: Mutex::new(ChunkCursor::default()),
        }
    }

    /// Calls `visit(object, frozen)` for every listed tracked object.
    ///
    /// # Safety
    /// As [`GcRings::for_each`].
    pub unsafe fn for_each(&self, mut visit: impl FnMut(*mut ffi::PyObject, bool)) {
        match self {
            // SAFETY: forwarded from the caller.
            TrackedSource::Rings(rings) => unsafe { rings.for_each(visit) },
            TrackedSource::Listed(list) => {
                let own = list.as_ptr();
                let n = list.len();
                for i in 0..n {
                    // SAFETY: in range; the list is not mutated during the loop.
                    let op = unsafe { ffi::PyList_GET_ITEM(own, i as ffi::Py_ssize_t) };
                    if op != own && !op.is_null() {
                        visit(op, false);
                    }
                }
            }
        }
    }
}

/// Tracked objects not in `listed` that are reachable from it through `tp_traverse`:
/// with `gc.get_objects()` as the source, these are the frozen objects.
///
/// # Safety
/// GIL held, gc disabled, no Python object created or freed until the result is used.
pub unsafe fn tracked_closure(listed: &[*mut ffi::PyObject]) -> Vec<*mut ffi::PyObject> {
    let seen = NodeSet::default();
    for &op in listed {
        // An address the set cannot hold is left out of the closure's seeds.
        let _ = seen.insert(op as usize);
    }
    let mut work: Vec<*mut ffi::PyObject> = listed.to_vec();
    let mut found = Vec::new();
    let mut targets: Vec<*mut ffi::PyObject> = Vec::new();
    while let Some(op) = work.pop() {
        targets.clear();
        // SAFETY: forwarded from the caller.
        unsafe { traverse_into(op, &mut targets) };
        for &target in &targets {
            // Untracked containers are walked too: they may hold tracked frozen objects.
            // SAFETY: `target` was just reported by tp_traverse, so it is live.
            if unsafe { ffi::PyObject_IS_GC(target) } != 0
                && seen.insert(target as usize).is_ok_and(|(_, new)| new)
            {
                // SAFETY: as above.
                if unsafe { is_gc_tracked(target) } {
                    found.push(target);
                }
                work.push(target);
            }
        }
    }
    found
}

extern "C" fn push_visited(op: *mut ffi::PyObject, arg: *mut std::ffi::c_void) -> std::ffi::c_int {
    if !op.is_null() {
        // SAFETY: `arg` is the `&mut Vec` passed by `traverse_into` for this call.
        let out = unsafe { &mut *(arg as *mut Vec<*mut ffi::PyObject>) };
        out.push(op);
    }
    0
}

/// Appends to `out` every reference `tp_traverse` reports for `op` (nothing when `op` is
/// not a gc object or its type has no traverse slot).
///
/// # Safety
/// GIL held; `op` live.
pub unsafe fn traverse_into(op: *mut ffi::PyObject, out: &mut Vec<*mut ffi::PyObject>) {
    // SAFETY: forwarded from the caller.
    unsafe {
        if ffi::PyObject_IS_GC(op) != 0 {
            traverse_gc_object_into(op, out);
        }
    }
}

/// [`traverse_into`] for an object the caller knows to be a gc object.
///
/// # Safety
/// As [`traverse_into`], and `PyObject_IS_GC(op)`.
pub unsafe fn traverse_gc_object_into(op: *mut ffi::PyObject, out: &mut Vec<*mut ffi::PyObject>) {
    // SAFETY: live gc object; tp_traverse only reads and calls our visitor.
    unsafe {
        if let Some(traverse) = (*ffi::Py_TYPE(op)).tp_traverse {
            traverse(
                op,
                push_visited,
                out as *mut Vec<*mut ffi::PyObject> as *mut _,
            );
        }
    }
}

/// Multiplicative hasher for addresses: pointers have zero low bits, so the product is
/// rotated to bring well-mixed high bits down to where hash tables take bucket bits.
#[derive(Default, Clone, Copy)]
pub struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0.rotate_left(26)
    }
}

/// Hash map keyed by addresses (object or type pointers).
pub type AddressMap<V> = HashMap<usize, V, BuildHasherDefault<AddressHasher>>;

#[cfg(test)]
mod tests {
    use super::*;

    /// A ring of `len` objects after a list head, linked both ways as CPython links them
    /// (with a flag bit set in every `_gc_prev`, as `_PyGC_PREV_MASK_FINALIZED` may be).
    fn ring(len: usize) -> Vec<GcHead> {
        let mut heads: Vec<GcHead> = (0..=len).map(|_| GcHead { next: 0, prev: 0 }).collect();
        let base = heads.as_ptr() as usize;
        let at = |i: usize| base + (i % (len + 1)) * GC_HEAD_BYTES;
        for (i, head) in heads.iter_mut().enumerate() {
            head.next = at(i + 1);
            head.prev = at(i + len) | 1;
        }
        heads
    }

    fn objects_of(heads: &[GcHead]) -> Vec<usize> {
        heads[1..]
            .iter()
            .map(|h| object_of(h as *const GcHead as usize) as usize)
            .collect()
    }

    #[test]
    fn a_ring_walked_from_both_ends_visits_each_object_once() {
        for len in 0..9 {
            let heads = ring(len);
            let head = heads.as_ptr() as usize;
            let mut seen = Vec::new();
            // SAFETY: a well-formed ring that lives until the end of the loop body.
            unsafe {
                let mut rest = RingSegment::whole(head);
                while let Some(segment) = rest {
                    rest = segment.take_ends(&mut |node| seen.push(object_of(node) as usize));
                }
            }
            seen.sort_unstable();
            assert_eq!(seen, objects_of(&heads), "ring of {len}");
        }
    }

    #[test]
    fn chunks_resume_each_ring_where_the_last_chunk_stopped() {
        let rings: Vec<Vec<GcHead>> = [5, 0, 1, 8].into_iter().map(ring).collect();
        let mut heads = [0usize; N_GENERATIONS + 1];
        for (slot, ring) in heads.iter_mut().zip(&rings) {
            *slot = ring.as_ptr() as usize;
        }
        let chunks = TrackedChunks {
            from: ChunkSource::Rings(heads),
            cursor: Mutex::new(ChunkCursor::default()),
        };
        let mut chunk = Vec::new();
        let mut seen = Vec::new();
        // SAFETY: the rings are well formed and outlive the chunks.
        while unsafe { chunks.next_chunk(&mut chunk, 3) } {
            assert!(chunk.len() <= 4, "a chunk passes its size by one at most");
            seen.extend(chunk.iter().map(|&op| op as usize));
        }
        let mut expected: Vec<usize> = rings.iter().flat_map(|r| objects_of(r)).collect();
        expected.sort_unstable();
        seen.sort_unstable();
        assert_eq!(seen, expected);
    }
}
