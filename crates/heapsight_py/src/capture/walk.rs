//! The full heap walk producing a `heapsight_snapshot::PackedSnapshot` (what the file is
//! written from; unpacked into a `Snapshot` for in-process analysis).
//!
//! Phases:
//! 1. Before the walk (Python code allowed): read roots (`sys.modules`, the innermost
//!    frame of each thread with its name), pause the collector, open the gc lists.
//! 2. The walk (GIL held, no Python code, nothing created or freed), on the GIL's thread
//!    and a helper: every tracked object becomes a node; each thread processes what it
//!    discovers first, in batches grouped by page, each node emitting its references
//!    (explicitly enumerated and labelled, then `tp_traverse` for what is left, unless
//!    the enumeration is known to cover it, as for plain class instances) and then
//!    appending its columns and its edges' targets, encoded as the file stores them, to
//!    that thread's [`PackedNodes`]: one run of the snapshot per thread, each run's
//!    deltas and predictions starting afresh, so that neither thread waits for the
//!    other and nothing is copied after. A reference to an address never seen makes a
//!    node (untracked leaves and containers; frozen objects when the gc lists could not
//!    be read). Dedup of addresses is a sparse bitmap shared by both threads
//!    ([`NodeSet`]), not a hash set or a sort; nodes and edge targets are named by the
//!    32-bit code it hands out instead of a 64-bit address.
//! 3. Right after the walk (GIL held): type names, closure variable names, then user
//!    `__sizeof__` calls on objects that need them (the only Python code run).
//! 4. Without the GIL: roots and the holders of closure cells and frame slots are named
//!    by their codes. The file stores codes as node keys, and the reader numbers them,
//!    names the cells and slots, and derives the external roots from refcounts and
//!    in-degrees, so the captured process does none of that.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use heapsight_snapshot::{
    node_flags, KeyedRoot, LabelKind, LocalNames, Metadata, NodeIdx, PackedNode, PackedNodes,
    PackedSnapshot, RootKind, Snapshot, StrId, StringTable, TypeIdx, Types, NO_STR,
};
use pyo3::exceptions::PyRuntimeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::attrs;
use super::bounds::{self, BoundedTypes};
use super::census::{self, type_qualname, DeferredSizes, TypeTable};
use super::frames::{self, LocalsLayout};
use super::gc_lists::{self, AddressMap, GcPause, TrackedChunks, TrackedSource};
use super::nodeset::{Code, NodeSet, PageCache};
use super::pure_traverse::PureTraverses;
use super::shims::{dict_find_ascii, type_qualified_name, unicode_to_string as read_str};
use super::sizes::NativeSizer;

/// What to capture.
#[derive(Clone, Debug, Default)]
pub struct CaptureOptions {
    /// Store short str/bytes values (up to [`MAX_VALUE_LEN`]) in node names.
    pub include_values: bool,
}

/// Longest str (chars) or bytes value stored with `include_values`.
pub const MAX_VALUE_LEN: usize = 200;
/// Deepest thread stack followed (a runaway recursion is cut there).
const MAX_STACK_DEPTH: usize = 10_000;
/// Longest dict key stored as a label.
const MAX_KEY_LABEL_LEN: usize = 64;
/// Nodes and edges of the last capture in this process. The next one reserves that much
/// (plus a margin) up front, and never less than [`COLUMN_FLOOR_BYTES`] per column: once
/// glibc has raised its mmap threshold after freeing a large block (anything that freed a
/// `gc.get_objects()` list did), columns below it grow inside the heap by copying
/// (`_int_realloc`: 3% of a capture in a profile) and leave the old copies resident (9 of
/// 79 bytes per node of peak memory on the benchmark heap). Reserved pages that are never
/// touched cost no memory.
static LAST_SHAPE: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];

/// Threads that walked the heap in the last capture in this process (for its summary:
/// the file format has no field for it).
static LAST_WALK_THREADS: AtomicUsize = AtomicUsize::new(0);

/// Threads that walked the heap in this process's last capture.
pub fn last_walk_threads() -> usize {
    LAST_WALK_THREADS.load(Ordering::Relaxed)
}

/// glibc's largest dynamic mmap threshold (64-bit): a block this big is always mapped on
/// its own, so it grows by `mremap`, without copying, and goes back to the system when
/// freed.
const COLUMN_FLOOR_BYTES: usize = 32 << 20;

/// Discovered objects processed at a time, grouped by 64 KiB page.
const WALK_BATCH: usize = 1024;
/// Tracked objects a walking thread takes from the gc rings at a time.
const RING_CHUNK: usize = 1024;
/// Environment variable that sets how many threads walk the heap (1 or 2).
pub const WALK_THREADS_ENV: &str = "HEAPSIGHT_WALK_THREADS";
/// Below this many explicit edges, traverse results are matched by linear scan.
const LINEAR_DEDUP_LIMIT: usize = 64;
/// 3.12+ `Py_RELATIVE_OFFSET` member flag: never left in a readied type, skipped defensively.
const MEMBER_RELATIVE_OFFSET: std::ffi::c_int = 8;

/// Interned strings of the snapshot being built.
#[derive(Default)]
struct Interner {
    strings: Vec<String>,
    ids: HashMap<String, StrId>,
}

impl Interner {
    fn intern(&mut self, s: &str) -> StrId {
        if let Some(id) = self.ids.get(s) {
            return *id;
        }
        let id = StrId(self.strings.len() as u32);
        self.strings.push(s.to_owned());
        self.ids.insert(s.to_owned(), id);
        id
    }

    fn intern_owned(&mut self, s: String) -> StrId {
        if let Some(id) = self.ids.get(&s) {
            return *id;
        }
        let id = StrId(self.strings.len() as u32);
        self.strings.push(s.clone());
        self.ids.insert(s, id);
        id
    }
}

/// Labels used on every capture, interned once.
struct FixedLabels {
    dict: StrId,
    class: StrId,
    mro: StrId,
    bases: StrId,
    base: StrId,
    name: StrId,
    qualname: StrId,
    slots: StrId,
    module: StrId,
    module_object: StrId,
    subclasses: StrId,
    code: StrId,
    globals: StrId,
    /// `func_builtins` exists from 3.10.
    #[cfg(Py_3_10)]
    builtins: StrId,
    defaults: StrId,
    kwdefaults: StrId,
    closure: StrId,
    doc: StrId,
    annotations: StrId,
    #[cfg(Py_3_12)]
    type_params: StrId,
    f_back: StrId,
    cell_contents: StrId,
    func: StrId,
    self_: StrId,
}

impl FixedLabels {
    fn new(strings: &mut Interner) -> Self {
        let mut s = |x: &str| strings.intern(x);
        FixedLabels {
            dict: s("__dict__"),
            class: s("__class__"),
            mro: s("__mro__"),
            bases: s("__bases__"),
            base: s("__base__"),
            name: s("__name__"),
            qualname: s("__qualname__"),
            slots: s("__slots__"),
            module: s("__module__"),
            module_object: s("ht_module"),
            subclasses: s("__subclasses__"),
            code: s("__code__"),
            globals: s("__globals__"),
            #[cfg(Py_3_10)]
            builtins: s("__builtins__"),
            defaults: s("__defaults__"),
            kwdefaults: s("__kwdefaults__"),
            closure: s("__closure__"),
            doc: s("__doc__"),
            annotations: s("__annotations__"),
            #[cfg(Py_3_12)]
            type_params: s("__type_params__"),
            f_back: s("f_back"),
            cell_contents: s("cell_contents"),
            func: s("__func__"),
            self_: s("__self__"),
        }
    }
}

/// Type objects that the ffi does not export, fetched before the walk.
struct KnownTypes {
    method: *mut ffi::PyTypeObject,
    bounded: &'static BoundedTypes,
}

/// What a type's instances look like to the walk, classified once per type: the per-object
/// checks (`PyModule_Check`, `PyAnySet_Check`, ...) walk the MRO and would otherwise run
/// millions of times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    Str,
    Bytes,
    ByteArray,
    List,
    Tuple,
    Dict,
    Type,
    Function,
    Cell,
    Method,
    Frame,
    Module,
    Set,
    /// `collections.deque`: a var-sized object whose `ob_size` is its length.
    Deque,
    Other,
}

#[derive(Clone, Copy)]
struct TypeInfo {
    shape: Shape,
    /// Exact dict, list or tuple: the explicit enumeration covers all of `tp_traverse`.
    fully_enumerated: bool,
    heap: bool,
    /// `PyType_IS_GC`.
    gc_type: bool,
    /// `PyType_IS_GC` and a `tp_traverse` slot.
    traversable: bool,
    /// The type has `tp_is_gc`: gc-ness is per object (type objects).
    per_object_gc: bool,
    /// Offset of the capacity of a bounded container type (lru_cache, deque).
    capacity_offset: Option<usize>,
    /// Instances may be processed by the helper thread, which holds no thread state:
    /// every `tp_traverse` in the base chain only reads ([`PureTraverses`]), and nothing
    /// about the instance needs a C API call that may write (type objects read their
    /// dict with `PyType_GetDict` on 3.12+, modules run their definition's `m_traverse`).
    helper_safe: bool,
    /// Instances traverse with `subtype_traverse` alone
    /// ([`PureTraverses::plain_class_chain`]).
    plain_instance: bool,
}

impl TypeInfo {
    /// # Safety
    /// `ty` a live type object; GIL held.
    unsafe fn classify(
        ty: *mut ffi::PyTypeObject,
        known: &KnownTypes,
        pure: &PureTraverses,
    ) -> TypeInfo {
        // SAFETY: reads flags and slots of a live type; PyType_IsSubtype runs no Python code.
        unsafe {
            let flags = super::shims::type_flags(ty);
            let is_sub = |base: *mut ffi::PyTypeObject| ffi::PyType_IsSubtype(ty, base) != 0;
            let exact = |t: *mut ffi::PyTypeObject| std::ptr::eq(ty, t);
            let shape = if flags & ffi::Py_TPFLAGS_UNICODE_SUBCLASS != 0 {
                Shape::Str
            } else if flags & ffi::Py_TPFLAGS_BYTES_SUBCLASS != 0 {
                Shape::Bytes
            } else if flags & ffi::Py_TPFLAGS_LIST_SUBCLASS != 0 {
                Shape::List
            } else if flags & ffi::Py_TPFLAGS_TUPLE_SUBCLASS != 0 {
                Shape::Tuple
            } else if flags & ffi::Py_TPFLAGS_DICT_SUBCLASS != 0 {
                Shape::Dict
            } else if flags & ffi::Py_TPFLAGS_TYPE_SUBCLASS != 0 {
                Shape::Type
            } else if is_sub(&raw mut ffi::PyByteArray_Type) {
                Shape::ByteArray
            } else if exact(&raw mut ffi::PyFunction_Type) {
                Shape::Function
            } else if exact(&raw mut ffi::PyCell_Type) {
                Shape::Cell
            } else if exact(known.method) {
                Shape::Method
            } else if exact(&raw mut ffi::PyFrame_Type) {
                Shape::Frame
            } else if is_sub(&raw mut ffi::PyModule_Type) {
                Shape::Module
            } else if is_sub(&raw mut ffi::PySet_Type) || is_sub(&raw mut ffi::PyFrozenSet_Type) {
                Shape::Set
            } else if flags & ffi::Py_TPFLAGS_HEAPTYPE == 0
                && std::ffi::CStr::from_ptr((*ty).tp_name) == c"collections.deque"
            {
                Shape::Deque
            } else {
                Shape::Other
            };
            let per_object_gc = (*ty).tp_is_gc.is_some();
            TypeInfo {
                helper_safe: pure.all_pure(ty)
                    && !per_object_gc
                    && !matches!(shape, Shape::Type | Shape::Module),
                shape,
                fully_enumerated: exact(&raw mut ffi::PyDict_Type)
                    || exact(&raw mut ffi::PyList_Type)
                    || exact(&raw mut ffi::PyTuple_Type),
                heap: flags & ffi::Py_TPFLAGS_HEAPTYPE != 0,
                gc_type: ffi::PyType_IS_GC(ty) != 0,
                traversable: ffi::PyType_IS_GC(ty) != 0 && (*ty).tp_traverse.is_some(),
                per_object_gc,
                capacity_offset: known.bounded.field_of(ty),
                plain_instance: pure.plain_class_chain(ty),
            }
        }
    }

    /// `PyObject_IS_GC(op)` for an instance `op` of the classified type, calling into the
    /// interpreter only for types whose gc-ness is per object: the walk asks for every one
    /// of millions of objects.
    ///
    /// # Safety
    /// `op` a live instance of the classified type; GIL held.
    #[inline]
    unsafe fn is_gc(&self, op: *mut ffi::PyObject) -> bool {
        if self.per_object_gc {
            // SAFETY: forwarded from the caller; `tp_is_gc` only reads.
            unsafe { ffi::PyObject_IS_GC(op) != 0 }
        } else {
            self.gc_type
        }
    }
}

/// Cache-key tags: objects are 8-aligned, so the low bits of an address can say what a
/// cached label was computed for.
const TAG_ATTR_NAME: usize = 0;
const TAG_KEY_TYPE: usize = 2;
const TAG_C_NAME: usize = 3;

/// What the walking threads share: read-only context, the set of discovered objects
/// (insertions are atomic), and the string and type tables behind locks that each thread
/// consults only when its own cache misses.
struct WalkShared {
    include_values: bool,
    immortals_exist: bool,
    version: (u8, u8),
    labels: FixedLabels,
    known: KnownTypes,
    pure: &'static PureTraverses,
    strings: Mutex<Interner>,
    types: Mutex<TypeTable>,
    seen: NodeSet,
    /// Codes of the capture's own objects: marked seen, never nodes, never edge targets.
    excluded: Vec<Code>,
    /// Objects of the permanent generation, when the gc rings were read and it is not empty.
    frozen_members: Option<NodeSet>,
    /// Objects listed by `gc.get_objects()` when that is the source: each holds one extra
    /// reference from the list, and tracked objects outside it are the frozen ones.
    listed_members: Option<NodeSet>,
    /// References the capture itself holds on specific objects (frames of `sys._current_frames()`).
    refs_held: AddressMap<isize>,
    /// Caller of each frame of the running threads (3.11+ frame objects leave `f_back`
    /// empty until asked).
    frame_callers: AddressMap<u64>,
    /// Where frames keep their locals, when this interpreter's frames can be read.
    locals_layout: Option<LocalsLayout>,
    pool: Mutex<WorkPool>,
    /// A thread ran out of work: the next thread to finish a batch with work to spare
    /// moves half of its queue to the pool.
    hungry: AtomicBool,
    /// An address the [`NodeSet`] could not hold was met: the capture fails.
    out_of_range: AtomicBool,
}

// SAFETY: the raw pointers inside (type objects, probes) are only read during the walk,
// while the GIL's thread keeps every object alive and runs no Python code; the mutable
// parts are atomics and mutexes.
unsafe impl Sync for WalkShared {}

/// Work moved between the walking threads. One thread alone would otherwise process
/// everything a huge container leads to, while the other waits.
struct WorkPool {
    /// Discovered objects, for whichever thread takes them.
    spare: Vec<Code>,
    /// Objects the helper may not process, for the thread holding the GIL.
    for_main: Vec<Code>,
    /// Whether the GIL's thread (0) and the helper (1) may still discover work: the walk
    /// is over when neither is busy and the pool is empty.
    busy: [bool; 2],
    /// A thread left by a panic: the other stops too (the capture fails), rather than
    /// wait for work only the lost thread could do.
    abandoned: bool,
}

/// Marks a walking thread as no longer busy when it leaves, normally or by a panic: the
/// other thread would otherwise wait for it forever, inside the host application.
struct LeavesPool<'s> {
    pool: &'s Mutex<WorkPool>,
    thread: usize,
}

impl Drop for LeavesPool<'_> {
    fn drop(&mut self) {
        let mut pool = locked(self.pool);
        pool.busy[self.thread] = false;
        pool.abandoned |= std::thread::panicking();
    }
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One walking thread: the objects it discovered first, and the columns of the nodes it
/// processed, in its own order.
struct Walker<'s> {
    shared: &'s WalkShared,
    /// Runs beside the GIL's thread without a thread state: hands over the objects only
    /// that thread may process.
    helper: bool,
    label_cache: AddressMap<StrId>,
    /// Dict key labels by key object: the kind is cached with the id (the text need not be
    /// rescanned for every entry).
    key_cache: AddressMap<(LabelKind, StrId)>,
    /// Index in the shared type table and classification, per type.
    type_cache: AddressMap<(TypeIdx, TypeInfo)>,
    last_type: Option<(*mut ffi::PyTypeObject, TypeIdx, TypeInfo)>,
    page_cache: PageCache,
    /// Codes of the objects discovered and not yet processed, in discovery order.
    queue: VecDeque<Code>,
    /// The next batch to process, sorted by code.
    batch: Vec<Code>,
    /// Discovered by the helper, to be handed over.
    to_hand_over: Vec<Code>,
    chunk: Vec<*mut ffi::PyObject>,
    columns: WalkColumns,
    /// Addresses of the current node's edges so far (matched against `tp_traverse`).
    node_targets: Vec<u64>,
    /// The same edges' targets as [`NodeSet`] codes: the node's targets in the file.
    node_target_codes: Vec<u64>,
    sizer: NativeSizer,
    attr_buf: Vec<(*mut ffi::PyObject, *mut ffi::PyObject)>,
    traverse_buf: Vec<*mut ffi::PyObject>,
    leftover_buf: Vec<*mut ffi::PyObject>,
    dedup_counts: AddressMap<u32>,
}

/// What a walking thread produced: the columns of its nodes, in its node order.
#[derive(Default)]
struct WalkColumns {
    /// The processed nodes' columns and their edges' targets and labels, as the file
    /// stores them: one run of the snapshot. Nodes and edge targets are named by their
    /// [`NodeSet`] codes.
    packed: PackedNodes,
    /// (node, object) whose size needs `__sizeof__` after the walk. No reference is
    /// taken during the walk (the helper may not write a reference count).
    needs_sizeof: Vec<(usize, *mut ffi::PyObject)>,
    /// (closure tuple address, code object) of every function with a closure.
    closures: Vec<(u64, *mut ffi::PyObject)>,
    /// Containers of known capacity, in node order.
    bounds: Vec<heapsight_snapshot::Bound>,
    /// (frame address, code object) of every frame whose locals were emitted.
    frame_codes: Vec<(u64, *mut ffi::PyObject)>,
}

// SAFETY: the object pointers inside are only read by the GIL's thread once the helper
// that collected them has ended.
unsafe impl Send for WalkColumns {}

impl WalkColumns {
    /// Takes another thread's nodes as the run after this one: the lists that name nodes
    /// by index are appended, renumbered; the run itself is returned, left as it is.
    fn absorb(&mut self, other: WalkColumns) -> PackedNodes {
        let offset = self.packed.len();
        let WalkColumns {
            packed,
            needs_sizeof,
            closures,
            bounds,
            frame_codes,
        } = other;
        self.needs_sizeof.extend(
            needs_sizeof
                .into_iter()
                .map(|(node, op)| (node + offset, op)),
        );
        self.closures.extend(closures);
        self.bounds
            .extend(bounds.into_iter().map(|b| heapsight_snapshot::Bound {
                node: NodeIdx(b.node.0 + offset as u32),
                ..b
            }));
        self.frame_codes.extend(frame_codes);
        packed
    }
}

impl<'s> Walker<'s> {
    fn new(shared: &'s WalkShared, helper: bool) -> Self {
        Walker {
            shared,
            helper,
            label_cache: AddressMap::default(),
            key_cache: AddressMap::default(),
            type_cache: AddressMap::default(),
            last_type: None,
            page_cache: PageCache::default(),
            queue: VecDeque::new(),
            batch: Vec::new(),
            to_hand_over: Vec::new(),
            chunk: Vec::with_capacity(RING_CHUNK),
            columns: WalkColumns::default(),
            node_targets: Vec::new(),
            node_target_codes: Vec::new(),
            sizer: NativeSizer::new(),
            attr_buf: Vec::new(),
            traverse_buf: Vec::new(),
            leftover_buf: Vec::new(),
            dedup_counts: AddressMap::default(),
        }
    }

    fn reserve(&mut self, nodes: usize, edges: usize) {
        // Varints take one to three bytes: the floor keeps each column mapped on its own.
        self.columns
            .packed
            .try_reserve(nodes.max(COLUMN_FLOOR_BYTES), edges.max(COLUMN_FLOOR_BYTES));
    }

    /// Marks `address` seen; a new one becomes one of this thread's next nodes. `None`
    /// for an address the set cannot hold (the capture then fails).
    #[inline]
    fn discover(&mut self, address: usize) -> Option<(Code, bool)> {
        match self
            .shared
            .seen
            .insert_cached(&mut self.page_cache, address)
        {
            Ok((code, new)) => {
                if new {
                    self.queue.push_back(code);
                }
                Some((code, new))
            }
            Err(_) => {
                self.shared.out_of_range.store(true, Ordering::Relaxed);
                None
            }
        }
    }

    /// Interns `text` in the shared table. Callers look in their own caches first (by
    /// the address of the object the text came from, except for int keys, mostly
    /// distinct), so no thread keeps a copy of the table.
    fn intern_owned(&mut self, text: String) -> StrId {
        locked(&self.shared.strings).intern_owned(text)
    }

    /// The shared index and the classification of a type.
    #[inline]
    unsafe fn type_entry(&mut self, ty: *mut ffi::PyTypeObject) -> (TypeIdx, TypeInfo) {
        if let Some((last, idx, info)) = self.last_type {
            if last == ty {
                return (idx, info);
            }
        }
        let (idx, info) = match self.type_cache.get(&(ty as usize)) {
            Some(&entry) => entry,
            None => {
                let idx = TypeIdx(locked(&self.shared.types).index_of(ty));
                // SAFETY: the caller's: `ty` is the type of a live object.
                let info = unsafe { TypeInfo::classify(ty, &self.shared.known, self.shared.pure) };
                self.type_cache.insert(ty as usize, (idx, info));
                (idx, info)
            }
        };
        self.last_type = Some((ty, idx, info));
        (idx, info)
    }

    /// Discovers and processes tracked objects, a chunk of the gc rings at a time, until
    /// no chunk is left; then what they lead to, until this thread's queue is empty.
    unsafe fn walk_tracked(&mut self, tracked: &TrackedChunks) {
        let mut chunk = std::mem::take(&mut self.chunk);
        // SAFETY (both calls): the caller's; the walk creates and frees no Python object.
        while unsafe { tracked.next_chunk(&mut chunk, RING_CHUNK) } {
            for &op in &chunk {
                self.discover(op as usize);
            }
            // At most two batches wait, so the queue stays small.
            while self.queue.len() >= 2 * WALK_BATCH {
                unsafe { self.process_batch(WALK_BATCH) };
            }
        }
        self.chunk = chunk;
        // SAFETY: as above.
        unsafe { self.drain() };
    }

    unsafe fn drain(&mut self) {
        while !self.queue.is_empty() {
            // SAFETY: the caller's.
            unsafe { self.process_batch(WALK_BATCH) };
        }
    }

    /// Once this thread's own work is done: takes work from the pool until no thread is
    /// busy and the pool is empty (a thread that is still busy may yet share or hand over).
    unsafe fn finish(&mut self) {
        let me = usize::from(self.helper);
        loop {
            {
                let mut pool = locked(&self.shared.pool);
                if pool.abandoned {
                    return;
                }
                if !self.helper {
                    self.queue.extend(pool.for_main.drain(..));
                }
                self.queue.extend(pool.spare.drain(..));
                pool.busy[me] = !self.queue.is_empty();
                if self.queue.is_empty() {
                    if !pool.busy.contains(&true)
                        && pool.spare.is_empty()
                        && pool.for_main.is_empty()
                    {
                        return;
                    }
                    self.shared.hungry.store(true, Ordering::Relaxed);
                }
            }
            if self.queue.is_empty() {
                std::thread::sleep(Duration::from_micros(50));
            } else {
                // SAFETY: the caller's.
                unsafe { self.drain() };
            }
        }
    }

    /// Moves half of this thread's queue to the pool when another thread asked for work.
    fn share_if_asked(&mut self) {
        if self.queue.len() < 2 * WALK_BATCH || !self.shared.hungry.load(Ordering::Relaxed) {
            return;
        }
        let mut pool = locked(&self.shared.pool);
        let keep = self.queue.len() / 2;
        pool.spare.extend(self.queue.drain(keep..));
        self.shared.hungry.store(false, Ordering::Relaxed);
    }

    /// Processes the `count` oldest discovered objects grouped by 64 KiB page (the
    /// order of their codes): objects that share a page then share its TLB entry and
    /// often a cache line, where discovery order scatters them over the heap.
    unsafe fn process_batch(&mut self, count: usize) {
        let count = count.min(self.queue.len());
        let mut batch = std::mem::take(&mut self.batch);
        batch.clear();
        batch.extend(self.queue.drain(..count));
        batch.sort_unstable();
        for &code in &batch {
            let address = self.shared.seen.address_of(code) as u64;
            // SAFETY: the caller's: every discovered address is a live object.
            if !unsafe { self.process(code, address) } {
                self.to_hand_over.push(code);
            }
        }
        self.batch = batch;
        if !self.to_hand_over.is_empty() {
            locked(&self.shared.pool)
                .for_main
                .append(&mut self.to_hand_over);
        }
        self.share_if_asked();
    }

    #[inline]
    fn emit(&mut self, target: *mut ffi::PyObject, kind: LabelKind, value: u32) {
        if target.is_null() {
            return;
        }
        let address = target as usize;
        let Some((code, new)) = self.discover(address) else {
            return;
        };
        if new {
            prefetch(target);
        } else if self.shared.excluded.contains(&code) {
            return;
        }
        self.node_target_codes.push(code);
        self.node_targets.push(address as u64);
        self.columns.packed.push_label(kind, value);
    }

    #[inline]
    fn emit_attr(&mut self, target: *mut ffi::PyObject, label: StrId) {
        self.emit(target, LabelKind::Attr, label.0);
    }

    /// Label id for a str object used as an attribute name (stored as is).
    unsafe fn attr_label(&mut self, name: *mut ffi::PyObject) -> StrId {
        let key = name as usize | TAG_ATTR_NAME;
        if let Some(id) = self.label_cache.get(&key) {
            return *id;
        }
        // SAFETY: live str (or not: then a placeholder).
        let text = unsafe { read_str(name) }.unwrap_or_else(|| String::from("?"));
        let id = self.intern_owned(text);
        self.label_cache.insert(key, id);
        id
    }

    /// Label id for a C string name (slot members), cached by the string's address.
    unsafe fn c_name_label(&mut self, name: *const std::ffi::c_char) -> StrId {
        let key = (name as usize & !7) | TAG_C_NAME;
        if let Some(id) = self.label_cache.get(&key) {
            if name as usize & 7 == 0 {
                return *id;
            }
        }
        // SAFETY: NUL-terminated member name of a live type.
        let text = unsafe { std::ffi::CStr::from_ptr(name) }
            .to_string_lossy()
            .into_owned();
        let id = self.intern_owned(text);
        if name as usize & 7 == 0 {
            self.label_cache.insert(key, id);
        }
        id
    }

    /// Label of the reference a dict holds to the value under `key`.
    unsafe fn key_label(&mut self, key: *mut ffi::PyObject) -> (LabelKind, u32) {
        // SAFETY: `key` is a live dict key.
        unsafe {
            let ty = ffi::Py_TYPE(key);
            let tp_flags = super::shims::type_flags(ty);
            if tp_flags & ffi::Py_TPFLAGS_UNICODE_SUBCLASS != 0 {
                if let Some(&(kind, id)) = self.key_cache.get(&(key as usize)) {
                    return (kind, id.0);
                }
                let (kind, id) = match read_str(key) {
                    Some(text) if is_label_like(&text) => (LabelKind::Key, self.intern_owned(text)),
                    // Opted in to values: any short key, quoted (never label-like then).
                    Some(text)
                        if self.shared.include_values
                            && text.chars().count() <= MAX_KEY_LABEL_LEN =>
                    {
                        (
                            LabelKind::KeyRepr,
                            self.intern_owned(format!(
                                "'{}'",
                                heapsight_graph::escape_quoted(&text)
                            )),
                        )
                    }
                    _ => {
                        let len = ffi::PyUnicode_GET_LENGTH(key);
                        (
                            LabelKind::KeyRepr,
                            self.intern_owned(format!("<str len {len}>")),
                        )
                    }
                };
                self.key_cache.insert(key as usize, (kind, id));
                return (kind, id.0);
            }
            if tp_flags & ffi::Py_TPFLAGS_LONG_SUBCLASS != 0 {
                let text = if key == ffi::Py_True() {
                    String::from("True")
                } else if key == ffi::Py_False() {
                    String::from("False")
                } else {
                    let value = self
                        .sizer
                        .layout()
                        .and_then(|layout| super::shims::long_value(layout, key));
                    value.map_or_else(|| String::from("<int>"), |v| v.to_string())
                };
                return (LabelKind::KeyRepr, self.intern_owned(text).0);
            }
            let cache_key = ty as usize | TAG_KEY_TYPE;
            if let Some(id) = self.label_cache.get(&cache_key) {
                return (LabelKind::KeyRepr, id.0);
            }
            let name = type_qualname(ty);
            let id = self.intern_owned(format!("<{name}>"));
            self.label_cache.insert(cache_key, id);
            (LabelKind::KeyRepr, id.0)
        }
    }

    unsafe fn dict_entries(&mut self, op: *mut ffi::PyObject) {
        // SAFETY: `op` is a live dict; PyDict_Next only reads.
        unsafe {
            // Split tables share their keys with the class: the dict owns no key objects.
            let split = !(*(op as *mut ffi::PyDictObject)).ma_values.is_null();
            let mut pos: ffi::Py_ssize_t = 0;
            let mut k: *mut ffi::PyObject = std::ptr::null_mut();
            let mut v: *mut ffi::PyObject = std::ptr::null_mut();
            while ffi::PyDict_Next(op, &mut pos, &mut k, &mut v) != 0 {
                if !split {
                    self.emit(k, LabelKind::KeyObject, 0);
                }
                let (kind, value) = self.key_label(k);
                self.emit(v, kind, value);
            }
        }
    }

    unsafe fn sequence_items(&mut self, items: *mut *mut ffi::PyObject, n: usize) {
        for i in 0..n {
            // SAFETY: `items` has `n` entries (list or tuple storage).
            let item = unsafe { *items.add(i) };
            self.emit(item, LabelKind::Index, i.min(u32::MAX as usize) as u32);
        }
    }

    unsafe fn type_fields(&mut self, op: *mut ffi::PyObject) {
        // SAFETY: `op` is a live type object.
        unsafe {
            let t = op as *mut ffi::PyTypeObject;
            let is_heap = super::shims::type_flags(t) & ffi::Py_TPFLAGS_HEAPTYPE != 0;
            #[cfg_attr(not(Py_3_12), allow(unused_mut))]
            let mut dict = (*t).tp_dict;
            #[cfg(Py_3_12)]
            if dict.is_null() {
                // Static builtin types keep their dict in the interpreter state since 3.12;
                // the state holds a reference, so dropping ours can never free it.
                dict = ffi::PyType_GetDict(t);
                if !dict.is_null() {
                    ffi::Py_DECREF(dict);
                }
            }
            self.emit_attr(dict, self.shared.labels.dict);
            self.emit_attr((*t).tp_mro, self.shared.labels.mro);
            self.emit_attr((*t).tp_bases, self.shared.labels.bases);
            self.emit_attr((*t).tp_base as *mut ffi::PyObject, self.shared.labels.base);
            if is_heap {
                let heap = t as *mut ffi::PyHeapTypeObject;
                self.emit_attr((*heap).ht_name, self.shared.labels.name);
                self.emit_attr((*heap).ht_qualname, self.shared.labels.qualname);
                self.emit_attr((*heap).ht_slots, self.shared.labels.slots);
                self.emit_attr((*heap).ht_module, self.shared.labels.module_object);
                // A dict of weak references to subclasses (static builtins store an index
                // here since 3.12, hence heap types only).
                self.emit_attr(
                    (*t).tp_subclasses.cast::<ffi::PyObject>(),
                    self.shared.labels.subclasses,
                );
            }
        }
    }

    unsafe fn function_fields(&mut self, op: *mut ffi::PyObject) {
        // SAFETY: `op` is a live function object.
        unsafe {
            let f = op as *mut ffi::PyFunctionObject;
            let l = &self.shared.labels;
            let fields = [
                ((*f).func_code, l.code),
                ((*f).func_globals, l.globals),
                ((*f).func_defaults, l.defaults),
                ((*f).func_kwdefaults, l.kwdefaults),
                ((*f).func_closure, l.closure),
                ((*f).func_doc, l.doc),
                ((*f).func_name, l.name),
                ((*f).func_qualname, l.qualname),
                ((*f).func_dict, l.dict),
                ((*f).func_module, l.module),
                ((*f).func_annotations, l.annotations),
                #[cfg(Py_3_10)]
                ((*f).func_builtins, l.builtins),
                #[cfg(Py_3_12)]
                ((*f).func_typeparams, l.type_params),
            ];
            for (target, label) in fields {
                self.emit_attr(target, label);
            }
            if !(*f).func_closure.is_null() && !(*f).func_code.is_null() {
                self.columns
                    .closures
                    .push(((*f).func_closure as u64, (*f).func_code));
            }
        }
    }

    /// Instance attributes: the `__dict__` reference when a dict object exists (its
    /// entries are then the dict's own edges), else the values stored without a dict
    /// (3.11+), plus filled `__slots__`. Returns whether these edges hold every reference
    /// `subtype_traverse` reports besides the type.
    unsafe fn instance_attrs(
        &mut self,
        op: *mut ffi::PyObject,
        ty: *mut ffi::PyTypeObject,
    ) -> bool {
        // SAFETY: `op` is a live instance of heap type `ty`.
        unsafe {
            if let Some(found) = attrs::dict_of(op) {
                self.emit_attr(found.dict, self.shared.labels.dict);
                self.slot_members(op, ty);
                return !found.shares_inline_values;
            }
            let mut pairs = std::mem::take(&mut self.attr_buf);
            pairs.clear();
            let source = attrs::for_each_attr(op, |name, value| pairs.push((name, value)));
            for &(name, value) in &pairs {
                let label = self.attr_label(name);
                self.emit_attr(value, label);
            }
            self.attr_buf = pairs;
            source != attrs::AttrSource::Unknown
        }
    }

    /// Filled `__slots__` members of every heap type in the base chain.
    unsafe fn slot_members(&mut self, op: *mut ffi::PyObject, ty: *mut ffi::PyTypeObject) {
        // SAFETY: member offsets of `op`'s own types point inside `op`.
        unsafe {
            let mut t = ty;
            while !t.is_null() && super::shims::type_flags(t) & ffi::Py_TPFLAGS_HEAPTYPE != 0 {
                let mut member = (*t).tp_members;
                while !member.is_null() && !(*member).name.is_null() {
                    if (*member).type_code == ffi::Py_T_OBJECT_EX
                        && (*member).flags & MEMBER_RELATIVE_OFFSET == 0
                    {
                        let slot = (op as *mut u8).add((*member).offset as usize)
                            as *mut *mut ffi::PyObject;
                        let label = self.c_name_label((*member).name);
                        self.emit_attr(*slot, label);
                    }
                    member = member.add(1);
                }
                t = (*t).tp_base;
            }
        }
    }

    /// Every reference of `op`: explicit, labelled enumeration first, then whatever
    /// `tp_traverse` reports beyond it.
    unsafe fn edges_of(
        &mut self,
        op: *mut ffi::PyObject,
        ty: *mut ffi::PyTypeObject,
        info: TypeInfo,
    ) {
        // SAFETY: `op` live, `ty` its type; all reads follow CPython's layouts.
        unsafe {
            self.node_targets.clear();
            let traverse = info.traversable && !info.fully_enumerated && info.is_gc(op);
            let mut leftover_kind = LabelKind::None;
            match info.shape {
                Shape::Dict => self.dict_entries(op),
                Shape::List => {
                    let list = op as *mut ffi::PyListObject;
                    self.sequence_items((*list).ob_item, ffi::Py_SIZE(op).max(0) as usize);
                }
                Shape::Tuple => {
                    let tuple = op as *mut ffi::PyTupleObject;
                    self.sequence_items(
                        (*tuple).ob_item.as_mut_ptr(),
                        ffi::Py_SIZE(op).max(0) as usize,
                    );
                }
                Shape::Type => self.type_fields(op),
                Shape::Function => self.function_fields(op),
                Shape::Cell => {
                    let cell = op as *mut ffi::PyCellObject;
                    self.emit_attr((*cell).ob_ref, self.shared.labels.cell_contents);
                }
                Shape::Method => {
                    // PyMethodObject: PyObject_HEAD, im_func, im_self.
                    let fields = op as *mut *mut ffi::PyObject;
                    self.emit_attr(*fields.add(2), self.shared.labels.func);
                    self.emit_attr(*fields.add(3), self.shared.labels.self_);
                }
                Shape::Frame => {
                    let mut f_back = super::shims::read_ptr::<ffi::PyObject>(
                        op as *const u8,
                        super::shims::frame_back_offset(self.shared.version) as isize,
                    );
                    if f_back.is_null() {
                        if let Some(&caller) = self.shared.frame_callers.get(&(op as usize)) {
                            f_back = caller as usize as *mut ffi::PyObject;
                        }
                    }
                    self.emit_attr(f_back, self.shared.labels.f_back);
                    // Indices now, renamed `local 'name'` after the walk.
                    let locals = self.shared.locals_layout;
                    if let Some((slots, code)) = locals.as_ref().and_then(|l| l.slots(op)) {
                        for (i, &word) in slots.iter().enumerate() {
                            if let Some(slot) = super::shims::stack_ref_object(word) {
                                self.emit(slot, LabelKind::Index, i as u32);
                            }
                        }
                        self.columns.frame_codes.push((op as u64, code));
                    }
                }
                Shape::Module => {
                    // PyModuleObject: PyObject_HEAD, md_dict, ... (stable 3.9 to 3.14).
                    let md_dict = *(op as *mut *mut ffi::PyObject).add(2);
                    if !md_dict.is_null() && ffi::PyDict_Check(md_dict) != 0 {
                        self.emit_attr(md_dict, self.shared.labels.dict);
                    }
                }
                Shape::Set => leftover_kind = LabelKind::SetItem,
                Shape::Str | Shape::Bytes | Shape::ByteArray | Shape::Deque | Shape::Other => {}
            }
            let mut attrs_cover_traverse = false;
            if info.heap {
                self.emit_attr(ty as *mut ffi::PyObject, self.shared.labels.class);
                if info.shape != Shape::Type {
                    attrs_cover_traverse = self.instance_attrs(op, ty) && info.plain_instance;
                }
            }
            if !traverse {
                return;
            }
            if attrs_cover_traverse {
                // Most instances of a web app's heap: the traverse would only repeat them.
                #[cfg(debug_assertions)]
                {
                    self.traverse_leftovers(op);
                    debug_assert!(
                        self.leftover_buf.is_empty(),
                        "subtype_traverse of a {:?} reported references its attributes miss",
                        std::ffi::CStr::from_ptr((*ty).tp_name)
                    );
                }
                return;
            }
            self.traverse_leftovers(op);
            let leftovers = std::mem::take(&mut self.leftover_buf);
            for &target in &leftovers {
                self.emit(target, leftover_kind, 0);
            }
            self.leftover_buf = leftovers;
        }
    }

    /// Fills `leftover_buf` with what `op`'s `tp_traverse` reports beyond the edges
    /// enumerated so far, each reference counted as often as it is reported.
    ///
    /// # Safety
    /// `op` a live gc object whose traverse this thread may call.
    unsafe fn traverse_leftovers(&mut self, op: *mut ffi::PyObject) {
        self.traverse_buf.clear();
        // SAFETY: forwarded from the caller.
        unsafe { gc_lists::traverse_gc_object_into(op, &mut self.traverse_buf) };
        self.leftover_buf.clear();
        let explicit = &self.node_targets[..];
        if explicit.len() <= LINEAR_DEDUP_LIMIT {
            let mut used: u64 = 0;
            for &target in &self.traverse_buf {
                let a = target as u64;
                let hit = explicit
                    .iter()
                    .enumerate()
                    .position(|(j, &e)| e == a && used & (1u64 << j) == 0);
                match hit {
                    Some(j) => used |= 1u64 << j,
                    None => self.leftover_buf.push(target),
                }
            }
        } else {
            self.dedup_counts.clear();
            for &e in explicit {
                *self.dedup_counts.entry(e as usize).or_insert(0) += 1;
            }
            for &target in &self.traverse_buf {
                match self.dedup_counts.get_mut(&(target as usize)) {
                    Some(c) if *c > 0 => *c -= 1,
                    _ => self.leftover_buf.push(target),
                }
            }
        }
    }

    /// Readable name of a module: `__name__` from its dict.
    unsafe fn module_name(&mut self, op: *mut ffi::PyObject) -> StrId {
        // SAFETY: `op` is a live module.
        unsafe {
            let md_dict = *(op as *mut *mut ffi::PyObject).add(2);
            match dict_find_ascii(md_dict, b"__name__").and_then(|n| read_str(n)) {
                Some(name) => self.intern_owned(name),
                None => NO_STR,
            }
        }
    }

    /// Computes one node's columns and edges; `false` (and nothing recorded) for an
    /// object the helper leaves to the GIL's thread.
    unsafe fn process(&mut self, code: Code, address: u64) -> bool {
        let index = self.columns.packed.len();
        self.node_target_codes.clear();
        // SAFETY: every node address is a live object during the walk.
        unsafe {
            let op = address as usize as *mut ffi::PyObject;
            let ty = ffi::Py_TYPE(op);
            let (type_idx, info) = self.type_entry(ty);
            if self.helper && !info.helper_safe {
                return false;
            }
            let shared = self.shared;
            let mut flags = 0u8;
            let listed = shared
                .listed_members
                .as_ref()
                .is_some_and(|l| l.contains(address as usize));
            let tracked = info.is_gc(op) && gc_lists::is_linked(op);
            if tracked {
                flags |= node_flags::GC_TRACKED;
                let frozen = match (&shared.frozen_members, &shared.listed_members) {
                    (Some(frozen), _) => frozen.contains(address as usize),
                    (None, Some(_)) => !listed,
                    (None, None) => false,
                };
                if frozen {
                    flags |= node_flags::FROZEN;
                }
            }
            let raw_refcount = ffi::Py_REFCNT(op);
            let refcount = if shared.immortals_exist && (raw_refcount as i32) < 0 {
                flags |= node_flags::IMMORTAL;
                u32::MAX
            } else {
                let mut held = isize::from(listed);
                if info.shape == Shape::Frame {
                    held += shared
                        .refs_held
                        .get(&(address as usize))
                        .copied()
                        .unwrap_or(0);
                }
                (raw_refcount - held).clamp(0, u32::MAX as isize) as u32
            };
            let size = match self.sizer.size(op) {
                Some(s) => s,
                None => {
                    // Replaced by `__sizeof__` after the walk; kept if that fails.
                    self.columns.needs_sizeof.push((index, op));
                    census::basic_size(op)
                }
            };
            let mut name = NO_STR;
            let mut length = 0u64;
            match info.shape {
                Shape::Str => {
                    let n = ffi::PyUnicode_GET_LENGTH(op).max(0) as usize;
                    length = n as u64;
                    if self.shared.include_values && n <= MAX_VALUE_LEN {
                        if let Some(text) = read_str(op) {
                            name = self.intern_owned(text);
                            flags |= node_flags::HAS_VALUE;
                        }
                    }
                }
                Shape::Bytes => {
                    let n = ffi::Py_SIZE(op).max(0) as usize;
                    length = n as u64;
                    if self.shared.include_values && n <= MAX_VALUE_LEN {
                        let data = ffi::PyBytes_AsString(op) as *const u8;
                        if !data.is_null() {
                            let bytes = std::slice::from_raw_parts(data, n);
                            name = self.intern_owned(escape_bytes(bytes));
                            flags |= node_flags::HAS_VALUE;
                        }
                    }
                }
                Shape::List | Shape::Tuple | Shape::ByteArray | Shape::Deque => {
                    length = ffi::Py_SIZE(op).max(0) as u64;
                }
                Shape::Dict => {
                    length = (*(op as *mut ffi::PyDictObject)).ma_used.max(0) as u64;
                }
                Shape::Set => {
                    length = (*(op as *mut ffi::PySetObject)).used.max(0) as u64;
                }
                Shape::Type => {
                    flags |= node_flags::IS_TYPE;
                    name = self.intern_owned(type_qualname(op as *mut ffi::PyTypeObject));
                }
                Shape::Function => {
                    let f = op as *mut ffi::PyFunctionObject;
                    name = self.attr_label((*f).func_qualname);
                }
                Shape::Module => {
                    flags |= node_flags::IS_MODULE;
                    name = self.module_name(op);
                }
                Shape::Cell | Shape::Method | Shape::Frame | Shape::Other => {}
            }
            if let Some(offset) = info.capacity_offset {
                self.columns.bounds.push(heapsight_snapshot::Bound {
                    node: NodeIdx(index as u32),
                    capacity: bounds::read_capacity(op, offset),
                });
            }
            self.edges_of(op, ty, info);
            self.columns.packed.push(
                PackedNode {
                    address,
                    key: code,
                    type_idx,
                    size,
                    flags,
                    refcount,
                    name,
                    length,
                },
                &self.node_target_codes,
            );
        }
        true
    }
}

/// Starts loading a newly discovered object's header, processed one or two batches
/// later. Still worth it under batching: without it the walk took 10-25% longer on the 3M
/// benchmark heap (bench/RESULTS.md, run 9), while a second prefetch just before
/// processing added nothing.
#[inline(always)]
fn prefetch(op: *mut ffi::PyObject) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching is a hint and never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(op as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = op;
}

/// Whether a str dict key may be stored as a label: short and identifier-like, so that
/// values (tokens, emails, free text) used as keys never reach the file.
fn is_label_like(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_KEY_LABEL_LEN
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'@' | b'-'))
}

/// Bytes rendered like Python's repr body: printable ASCII kept, the rest `\xNN`.
fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

/// The flags of node `node`, numbered across the runs.
fn flags_of(runs: &mut [PackedNodes], mut node: usize) -> Option<&mut u8> {
    for run in runs {
        if node < run.len() {
            return run.flags.get_mut(node);
        }
        node -= run.len();
    }
    None
}

/// A root recorded by address, resolved to a node after the walk.
struct PendingRoot {
    kind: RootKind,
    address: u64,
    name: StrId,
    extra: u64,
}

/// Everything the walk produced, free of Python pointers so it can leave the GIL.
struct RawGraph {
    /// One run per walking thread.
    runs: Vec<PackedNodes>,
    seen: NodeSet,
    /// The capture's own objects: members of `seen` that are no node.
    excluded: Vec<Code>,
    /// (node, size) of the nodes whose size `__sizeof__` gave after the walk.
    late_sizes: Vec<(u64, u64)>,
    strings: Vec<String>,
    types: Types,
    /// Closure tuple (or frame) address and the index in `name_lists` of the names of its
    /// cells (or local slots).
    closure_names: Vec<(u64, u32)>,
    name_lists: Vec<Vec<StrId>>,
    roots: Vec<PendingRoot>,
    bounds: Vec<heapsight_snapshot::Bound>,
    metadata: Metadata,
}

impl RawGraph {
    /// Names the roots and the holders of local names by key: the snapshot as the file
    /// will hold it. Nothing is numbered here: the reader does it.
    fn into_packed(self) -> PackedSnapshot {
        let RawGraph {
            mut runs,
            seen,
            excluded,
            late_sizes,
            strings,
            types,
            closure_names,
            name_lists,
            roots,
            bounds,
            metadata,
        } = self;
        // The columns were reserved generously; give the slack back (large blocks shrink
        // in place, without copying).
        runs.iter_mut().for_each(PackedNodes::shrink_to_fit);
        // Every member of the set is a node but the capture's own objects.
        let key_of = |address: u64| {
            seen.code_of(address as usize)
                .filter(|code| !excluded.contains(code))
        };
        let roots: Vec<KeyedRoot> = roots
            .iter()
            .filter_map(|r| {
                key_of(r.address).map(|key| KeyedRoot {
                    kind: r.kind,
                    key,
                    name: r.name,
                    extra: r.extra,
                })
            })
            .collect();
        // Closure cells are named after the code's free variables, frame slots after the
        // code's locals (a closure tuple shared by functions of one code is named once).
        let mut holders: Vec<(u64, u32)> = closure_names
            .iter()
            .filter_map(|&(address, list)| key_of(address).map(|key| (key, list)))
            .collect();
        holders.sort_unstable_by_key(|&(key, _)| key);
        holders.dedup_by_key(|&mut (key, _)| key);
        let mut packed = PackedSnapshot {
            metadata,
            strings: StringTable { strings },
            types,
            runs,
            roots,
            derive_external_roots: true,
            local_names: LocalNames {
                lists: name_lists,
                holders,
            },
            bounds,
        };
        packed.patch_sizes(&late_sizes);
        packed
    }
}

/// Roots and exclusions gathered before the walk (Python code allowed).
struct PreWalk<'py> {
    modules: Vec<(String, u64)>,
    /// (thread id, innermost frame, thread name).
    threads: Vec<(u64, u64, String)>,
    interpreter: Vec<(&'static str, u64)>,
    method_type: *mut ffi::PyTypeObject,
    bounded: &'static BoundedTypes,
    pure: &'static PureTraverses,
    locals_layout: Option<LocalsLayout>,
    /// The callers of the innermost frames, materialised and held until the walk ends.
    stack: Vec<Bound<'py, PyAny>>,
    /// (frame, its caller) along every thread's stack.
    stack_callers: Vec<(u64, u64)>,
    metadata: Metadata,
}

fn gather_pre_walk<'py>(py: Python<'py>, frames: &Bound<'py, PyDict>) -> PyResult<PreWalk<'py>> {
    let sys = py.import("sys")?;
    let builtins = py.import("builtins")?;
    let modules_obj = sys.getattr("modules")?;
    let modules_dict = modules_obj.cast::<PyDict>()?;
    let mut modules = Vec::with_capacity(modules_dict.len());
    for (k, v) in modules_dict.iter() {
        if v.is_none() {
            continue;
        }
        if let Ok(name) = k.extract::<String>() {
            modules.push((name, v.as_ptr() as u64));
        }
    }
    let mut names: HashMap<u64, String> = HashMap::new();
    if let Some(threading) = modules_dict.get_item("threading")? {
        if let Ok(active) = threading.getattr("_active") {
            if let Ok(active) = active.cast::<PyDict>() {
                for (ident, thread) in active.iter() {
                    let (Ok(ident), Ok(name)) = (
                        ident.extract::<u64>(),
                        thread.getattr("name").and_then(|n| n.extract::<String>()),
                    ) else {
                        continue;
                    };
                    names.insert(ident, name);
                }
            }
        }
    }
    let mut threads = Vec::new();
    let mut stack = Vec::new();
    let mut stack_callers = Vec::new();
    for (ident, frame) in frames.iter() {
        // Materialises a frame object for each caller (3.11+ creates them lazily): real
        // frames of the process, they live as long as the call does.
        let mut callee = frame.clone();
        for _ in 0..MAX_STACK_DEPTH {
            let Ok(caller) = callee.getattr("f_back") else {
                break;
            };
            if caller.is_none() {
                break;
            }
            stack_callers.push((callee.as_ptr() as u64, caller.as_ptr() as u64));
            stack.push(caller.clone());
            callee = caller;
        }
        let ident: u64 = ident.extract()?;
        let name = names
            .remove(&ident)
            .unwrap_or_else(|| format!("thread-{ident}"));
        threads.push((ident, frame.as_ptr() as u64, name));
    }
    let method_type = py.import("types")?.getattr("MethodType")?.as_ptr() as *mut ffi::PyTypeObject;
    let argv: Vec<String> = sys.getattr("argv")?.extract().unwrap_or_default();
    let metadata = Metadata {
        pid: std::process::id(),
        python_version: sys.getattr("version")?.extract()?,
        executable: sys.getattr("executable")?.extract().unwrap_or_default(),
        argv,
        time_unix_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
        rss_bytes: resident_set_bytes(),
        heapsight_version: env!("CARGO_PKG_VERSION").to_owned(),
        ..Metadata::default()
    };
    Ok(PreWalk {
        modules,
        threads,
        interpreter: vec![
            ("sys", sys.as_ptr() as u64),
            ("builtins", builtins.as_ptr() as u64),
        ],
        method_type,
        bounded: BoundedTypes::get(py),
        pure: PureTraverses::get(py),
        locals_layout: LocalsLayout::get(py),
        stack,
        stack_callers,
        metadata,
    })
}

/// Resident set size from `/proc/self/statm` (0 where unavailable).
fn resident_set_bytes() -> u64 {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Captures the whole heap (every gc-tracked object, frozen ones included, and the
/// untracked objects they reference) as a snapshot.
pub fn capture(py: Python<'_>, options: &CaptureOptions) -> PyResult<Snapshot> {
    let packed = capture_packed(py, options)?;
    py.detach(move || packed.into_snapshot())
        .map_err(|e| PyRuntimeError::new_err(format!("the captured heap is inconsistent: {e}")))
}

/// [`capture`] in the packed form a file is written from (no unpacked columns built).
pub fn capture_packed(py: Python<'_>, options: &CaptureOptions) -> PyResult<PackedSnapshot> {
    capture_prepared(py, prepare(py)?, options, AfterWalk::MayRunPython)
}

/// Everything read before the walk, where Python code may run: roots, thread names, the
/// probes, the collector paused, the gc lists opened. A fork capture prepares in the
/// parent, so that the child runs no Python code at all.
pub struct Prepared<'py> {
    frames: Bound<'py, PyDict>,
    pre: PreWalk<'py>,
    version: (u8, u8),
    pause: GcPause<'py>,
    n_frozen: u64,
    source: TrackedSource<'py>,
    walk_threads: usize,
}

pub fn prepare(py: Python<'_>) -> PyResult<Prepared<'_>> {
    let sys = py.import("sys")?;
    // Materialises a frame object for every thread's innermost frame (3.11+ creates them
    // lazily): accepted, they are real frames of the process.
    let frames = sys.call_method0("_current_frames")?.cast_into::<PyDict>()?;
    let pre = gather_pre_walk(py, &frames)?;
    let version_info = py.version_info();
    let version = (version_info.major, version_info.minor);
    let pause = GcPause::new(py)?;
    let n_frozen: u64 = pause
        .gc_module()
        .call_method0("get_freeze_count")?
        .extract()?;
    let source = TrackedSource::open(&pause)?;
    let walk_threads = walk_threads()?;
    Ok(Prepared {
        frames,
        pre,
        version,
        pause,
        n_frozen,
        source,
        walk_threads,
    })
}

/// Threads walking the heap: [`WALK_THREADS_ENV`] when set, else two where two cores
/// exist. Read before the walk, where a fork capture may still read the environment.
fn walk_threads() -> PyResult<usize> {
    let default = if std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2 {
        2
    } else {
        1
    };
    match std::env::var(WALK_THREADS_ENV) {
        Err(std::env::VarError::NotPresent) => Ok(default),
        Ok(value) if value.trim() == "1" => Ok(1),
        Ok(value) if value.trim() == "2" => Ok(2),
        Ok(value) => Err(pyo3::exceptions::PyValueError::new_err(format!(
            "{WALK_THREADS_ENV} must be 1 or 2 (threads walking the heap), not {value:?}; \
             unset it to let heapsight choose"
        ))),
        Err(std::env::VarError::NotUnicode(_)) => Err(pyo3::exceptions::PyValueError::new_err(
            format!("{WALK_THREADS_ENV} must be 1 or 2, and is not even text"),
        )),
    }
}

/// What may happen once the walk is done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterWalk {
    /// In the process itself: user `__sizeof__` methods run, and the GIL is released
    /// while the columns are finished.
    MayRunPython,
    /// In a forked child: no Python code, no GIL release (the threads that could take it
    /// do not exist there), only C-implemented `__sizeof__` methods run (a Python one
    /// leaves an estimated size), and nothing Python-side is released (the child only
    /// exits).
    NoPython,
}

/// The walk and the finishing steps on a prepared capture.
pub fn capture_prepared(
    py: Python<'_>,
    prepared: Prepared<'_>,
    options: &CaptureOptions,
    after: AfterWalk,
) -> PyResult<PackedSnapshot> {
    let Prepared {
        frames,
        pre,
        version,
        pause,
        n_frozen,
        source,
        walk_threads,
    } = prepared;

    let walk_started = Instant::now();
    let mut strings = Interner::default();
    let labels = FixedLabels::new(&mut strings);
    let seen = NodeSet::default();
    // The capture's own objects are marked seen but never become nodes; edges to them
    // are dropped when targets are mapped.
    let mut excluded: Vec<Code> = Vec::new();
    let mut own_objects = vec![frames.as_ptr() as usize];
    own_objects.extend(source.own_object().map(|own| own as usize));
    for own in own_objects {
        if let Ok((code, _)) = seen.insert(own) {
            excluded.push(code);
        }
    }
    let mut refs_held: AddressMap<isize> = AddressMap::default();
    for (_, frame, _) in &pre.threads {
        *refs_held.entry(*frame as usize).or_insert(0) += 1;
    }
    for frame in &pre.stack {
        *refs_held.entry(frame.as_ptr() as usize).or_insert(0) += 1;
    }
    let frame_callers: AddressMap<u64> = pre
        .stack_callers
        .iter()
        .map(|&(frame, caller)| (frame as usize, caller))
        .collect();
    // SAFETY (all blocks below): GIL held and gc paused; `process` and the closures
    // create and free no Python object.
    let mut frozen_members = None;
    let mut listed_members = None;
    match &source {
        TrackedSource::Rings(rings) if n_frozen > 0 => {
            let frozen = NodeSet::default();
            unsafe { rings.for_each_permanent(|op| _ = frozen.insert(op as usize)) };
            frozen_members = Some(frozen);
        }
        TrackedSource::Rings(_) => {}
        TrackedSource::Listed(_) => {
            let listed = NodeSet::default();
            unsafe { source.for_each(|op, _| _ = listed.insert(op as usize)) };
            listed_members = Some(listed);
        }
    }
    let shared = WalkShared {
        include_values: options.include_values,
        immortals_exist: version >= (3, 12),
        version,
        labels,
        known: KnownTypes {
            method: pre.method_type,
            bounded: pre.bounded,
        },
        pure: pre.pure,
        strings: Mutex::new(strings),
        types: Mutex::new(TypeTable::default()),
        seen,
        excluded,
        frozen_members,
        listed_members,
        refs_held,
        frame_callers,
        locals_layout: pre.locals_layout,
        pool: Mutex::new(WorkPool {
            spare: Vec::new(),
            for_main: Vec::new(),
            busy: [true, walk_threads > 1],
            abandoned: false,
        }),
        hungry: AtomicBool::new(false),
        out_of_range: AtomicBool::new(false),
    };
    let tracked = source.chunks();
    let mut walker = Walker::new(&shared, false);
    let hint = LAST_SHAPE.each_ref().map(|v| v.load(Ordering::Relaxed));
    walker.reserve(hint[0] + hint[0] / 16, hint[1] + hint[1] / 16);
    // Tracked objects are taken from the gc rings a chunk at a time by each walking
    // thread; each processes what it discovers first. Discoveries wait for a batch of
    // `WALK_BATCH` and are processed grouped by 64 KiB page: the heap is far larger than
    // the TLB, and in discovery order nearly every header load also paid a page walk (the
    // walk took 17% longer on the 3M benchmark heap).
    let helper_columns = std::thread::scope(|scope| {
        let helper = (walk_threads > 1)
            .then(|| {
                std::thread::Builder::new()
                    .name(String::from("heapsight-walk"))
                    .spawn_scoped(scope, || {
                        let _leaves = LeavesPool {
                            pool: &shared.pool,
                            thread: 1,
                        };
                        let mut helper = Walker::new(&shared, true);
                        helper.reserve(hint[0] + hint[0] / 16, hint[1] + hint[1] / 16);
                        // SAFETY: the GIL's thread holds the GIL, keeps the collector
                        // paused and runs no Python code until this thread has ended.
                        unsafe {
                            helper.walk_tracked(&tracked);
                            helper.finish();
                        }
                        helper.columns
                    })
                    .inspect_err(|_| {
                        // No thread to be had: this one walks alone.
                        locked(&shared.pool).busy[1] = false;
                    })
                    .ok()
            })
            .flatten();
        let _leaves = LeavesPool {
            pool: &shared.pool,
            thread: 0,
        };
        unsafe { walker.walk_tracked(&tracked) };
        // Running frames are untracked on 3.11+ and reachable from no object: seed them.
        for (_, frame, _) in &pre.threads {
            walker.discover(*frame as usize);
        }
        unsafe {
            walker.drain();
            walker.finish();
        }
        helper.map(|helper| helper.join())
    });
    let mut columns = std::mem::take(&mut walker.columns);
    let walk_threads = 1 + usize::from(helper_columns.is_some());
    let walk_ms = walk_started.elapsed().as_millis() as u64;
    let mut helper_run = None;
    let failure = match helper_columns {
        Some(Ok(helper)) => {
            helper_run = Some(columns.absorb(helper));
            None
        }
        Some(Err(_)) => Some(
            "the heap walk's helper thread failed; set HEAPSIGHT_WALK_THREADS=1 to walk on \
             one thread, and please report this",
        ),
        None => None,
    }
    .or_else(|| {
        shared.out_of_range.load(Ordering::Relaxed).then_some(
            "the heap uses addresses beyond 128 TiB or more than 4 TiB of distinct pages, \
             which a snapshot cannot hold",
        )
    });
    if let Some(failure) = failure {
        if after == AfterWalk::NoPython {
            // As below: the child only exits, releasing nothing.
            std::mem::forget((source, pause, frames, pre));
        }
        return Err(PyRuntimeError::new_err(failure));
    }
    let mut runs = vec![std::mem::take(&mut columns.packed)];
    runs.extend(helper_run);
    LAST_SHAPE[0].store(runs.iter().map(PackedNodes::len).sum(), Ordering::Relaxed);
    LAST_SHAPE[1].store(
        runs.iter().map(|run| run.n_edges() as usize).sum(),
        Ordering::Relaxed,
    );
    drop(walker);
    let WalkShared {
        strings,
        types: type_table,
        seen,
        excluded,
        ..
    } = shared;
    let mut strings = strings.into_inner().unwrap_or_else(|p| p.into_inner());
    let type_table = type_table.into_inner().unwrap_or_else(|p| p.into_inner());

    // After the walk, still under the GIL: names (before any Python code could free a
    // type or code object), then user `__sizeof__`.
    let mut types = Types::default();
    for &ty in &type_table.types {
        // SAFETY: every type in the table has instances that are still alive.
        let name = unsafe { type_qualified_name(ty) };
        types.address.push(ty as u64);
        types.name.push(strings.intern_owned(name));
    }
    // Names read from the code objects themselves (no Python call): the same in-process
    // and in a forked child.
    let mut closure_names: Vec<(u64, u32)> = Vec::with_capacity(columns.closures.len());
    let mut name_lists: Vec<Vec<StrId>> = Vec::new();
    for (holders, which) in [
        (
            std::mem::take(&mut columns.closures),
            frames::Names::FreeVariables,
        ),
        (
            std::mem::take(&mut columns.frame_codes),
            frames::Names::LocalSlots,
        ),
    ] {
        // One list per code object, shared by all its closures or frames.
        let mut by_code: AddressMap<u32> = AddressMap::default();
        for (holder, code) in holders {
            let strings = &mut strings;
            let list = *by_code.entry(code as usize).or_insert_with(|| {
                // SAFETY: the code object is alive: nothing has been freed since the walk.
                let names = unsafe { frames::code_names(code, which) }
                    .unwrap_or_default()
                    .into_iter()
                    .map(|n| strings.intern_owned(n))
                    .collect();
                name_lists.push(names);
                (name_lists.len() - 1) as u32
            });
            closure_names.push((holder, list));
        }
    }
    let mut deferred = DeferredSizes::default();
    for (node, op) in std::mem::take(&mut columns.needs_sizeof) {
        // SAFETY: GIL held, no Python code has run since the walk: `op` is alive. The
        // reference keeps it so while `__sizeof__` runs.
        unsafe { deferred.defer(node, op) };
    }
    let mut late_sizes: Vec<(u64, u64)> = Vec::new();
    {
        let runs = &mut runs;
        let mut report = |slot: usize, size: Option<u64>| match size {
            Some(s) => late_sizes.push((slot as u64, s)),
            None => {
                if let Some(f) = flags_of(runs, slot) {
                    *f |= node_flags::SIZE_ESTIMATED;
                }
            }
        };
        match after {
            AfterWalk::MayRunPython => deferred.resolve(py, report)?,
            AfterWalk::NoPython => deferred.resolve_native(&mut report),
        }
    }
    late_sizes.sort_unstable();
    let n_tracked_total = runs
        .iter()
        .flat_map(|run| &run.flags)
        .filter(|f| **f & node_flags::GC_TRACKED != 0)
        .count() as u64;

    let mut roots: Vec<PendingRoot> = Vec::new();
    for (name, address) in &pre.modules {
        roots.push(PendingRoot {
            kind: RootKind::Module,
            address: *address,
            name: strings.intern(name),
            extra: 0,
        });
    }
    for (ident, frame, name) in &pre.threads {
        roots.push(PendingRoot {
            kind: RootKind::Thread,
            address: *frame,
            name: strings.intern(name),
            extra: *ident,
        });
    }
    for (name, address) in &pre.interpreter {
        roots.push(PendingRoot {
            kind: RootKind::Interpreter,
            address: *address,
            name: strings.intern(name),
            extra: 0,
        });
    }
    let mut metadata = pre.metadata.clone();
    metadata.n_gc_tracked = n_tracked_total;
    metadata.n_frozen = n_frozen;
    metadata.include_values = options.include_values;
    metadata.walk_ms = walk_ms;
    LAST_WALK_THREADS.store(walk_threads, Ordering::Relaxed);
    let raw = RawGraph {
        runs,
        seen,
        excluded,
        late_sizes,
        strings: strings.strings,
        types,
        closure_names,
        name_lists,
        roots,
        bounds: columns.bounds,
        metadata,
    };
    match after {
        AfterWalk::MayRunPython => {
            drop(source);
            drop(pause);
            drop(frames);
            let snapshot = py.detach(move || raw.into_packed());
            drop(pre);
            Ok(snapshot)
        }
        AfterWalk::NoPython => {
            // The child only exits: a released reference could run a finaliser, and
            // re-enabling the collector is a Python call.
            std::mem::forget((source, pause, frames, pre));
            Ok(raw.into_packed())
        }
    }
}
