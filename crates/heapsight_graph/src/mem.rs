//! Allocation of the big per-node and per-edge arrays.
//!
//! The graph passes are random-access bound: on a 10M-node heap nearly every access
//! misses the TLB as well as the caches, and under virtualisation a TLB miss costs a
//! two-level page walk. Backing the arrays with 2 MiB transparent huge pages (where the
//! kernel allows it on request, `madvise` mode) removes most of those walks.

/// Arrays smaller than this are left alone: they fit in a few pages anyway.
const MIN_ADVISED_BYTES: usize = 8 << 20;
const HUGE_PAGE: usize = 2 << 20;

/// A vector of `len` copies of `value`, on huge pages where possible.
pub(crate) fn filled<T: Clone>(len: usize, value: T) -> Vec<T> {
    let mut v = with_capacity(len);
    v.resize(len, value);
    v
}

/// An empty vector with room for `capacity` items, on huge pages where possible.
/// Filling it must not exceed `capacity`, or the reallocation loses the advice.
pub(crate) fn with_capacity<T>(capacity: usize) -> Vec<T> {
    let v: Vec<T> = Vec::with_capacity(capacity);
    advise_huge_pages(
        v.as_ptr().cast(),
        capacity.saturating_mul(std::mem::size_of::<T>()),
    );
    v
}

/// Asks the kernel to move an existing big array (such as the snapshot's edge columns,
/// allocated elsewhere) onto huge pages now. Contents are unchanged; failure is ignored.
pub(crate) fn collapse_to_huge_pages<T>(items: &[T]) {
    #[cfg(target_os = "linux")]
    {
        let bytes = std::mem::size_of_val(items);
        if bytes < MIN_ADVISED_BYTES {
            return;
        }
        let ptr = items.as_ptr() as usize;
        let start = ptr.next_multiple_of(HUGE_PAGE);
        let end = (ptr + bytes) / HUGE_PAGE * HUGE_PAGE;
        if end > start {
            // SAFETY: [start, end) lies inside `items` and is page aligned. Both advices
            // only change how the kernel backs the pages (MADV_COLLAPSE copies them
            // into huge pages, preserving contents); neither writes through the range
            // as Rust sees it, and errors just leave the pages as they were.
            unsafe {
                let region = start as *mut libc::c_void;
                libc::madvise(region, end - start, libc::MADV_HUGEPAGE);
                libc::madvise(region, end - start, libc::MADV_COLLAPSE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = items;
}

#[cfg(target_os = "linux")]
fn advise_huge_pages(ptr: *const u8, bytes: usize) {
    if bytes < MIN_ADVISED_BYTES {
        return;
    }
    let start = (ptr as usize).next_multiple_of(HUGE_PAGE);
    let end = (ptr as usize + bytes) / HUGE_PAGE * HUGE_PAGE;
    if end > start {
        // SAFETY: [start, end) lies inside the allocation just made for the vector
        // and is page aligned; MADV_HUGEPAGE only changes how the kernel backs those
        // pages, never their contents, and failure is harmless (the advice is ignored).
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_ptr: *const u8, _bytes: usize) {}

/// Asks the CPU to start loading `items[i]` into the cache, for a random access the
/// caller knows it will make soon: the passes here are bound by the latency of such
/// accesses, and a load started a few iterations early overlaps with the work between.
/// Out of range or off x86-64, nothing happens.
#[inline(always)]
pub(crate) fn prefetch<T>(items: &[T], i: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(item) = items.get(i) {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch is a hint: it never faults, reads nothing into the
        // program's state and writes nothing; the address is inside `items` anyway.
        unsafe { _mm_prefetch::<_MM_HINT_T0>((item as *const T).cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (items, i);
}
