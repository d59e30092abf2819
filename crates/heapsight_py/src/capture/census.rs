//! Counts and bytes per type over every gc-tracked object (frozen ones included), plus the
//! object-reading helpers the census shares with the full walk (type names, str contents).
//!
//! Speed comes from doing per-type work once: objects are aggregated into a `Vec` indexed
//! through a small map keyed by type pointer, and names are computed once per type.

use std::ffi::CStr;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::gc_lists::{self, AddressMap, GcPause, TrackedSource};
use super::shims;
use super::sizes::NativeSizer;

/// Maps type pointers to dense indices, with a one-entry cache: heaps come in runs of
/// same-typed objects.
#[derive(Default)]
pub struct TypeTable {
    pub types: Vec<*mut ffi::PyTypeObject>,
    index: AddressMap<u32>,
    last: Option<(*mut ffi::PyTypeObject, u32)>,
}

impl TypeTable {
    #[inline]
    pub fn index_of(&mut self, ty: *mut ffi::PyTypeObject) -> u32 {
        if let Some((t, i)) = self.last {
            if t == ty {
                return i;
            }
        }
        let next = self.types.len() as u32;
        let i = *self.index.entry(ty as usize).or_insert(next);
        if i == next {
            self.types.push(ty);
        }
        self.last = Some((ty, i));
        i
    }
}

/// `tp_name` as a Rust string.
///
/// # Safety
/// `ty` a live type object.
pub unsafe fn tp_name(ty: *mut ffi::PyTypeObject) -> String {
    // SAFETY: tp_name is a NUL-terminated C string for every initialised type.
    unsafe {
        let raw = (*ty).tp_name;
        if raw.is_null() {
            return String::from("?");
        }
        CStr::from_ptr(raw).to_string_lossy().into_owned()
    }
}

/// The type's `__qualname__` read from the struct (heap types) or `tp_name` after its last
/// dot (static types).
///
/// # Safety
/// `ty` a live type object; GIL held.
pub unsafe fn type_qualname(ty: *mut ffi::PyTypeObject) -> String {
    // SAFETY: heap types are PyHeapTypeObject.
    unsafe {
        if shims::type_flags(ty) & ffi::Py_TPFLAGS_HEAPTYPE != 0 {
            let heap = ty as *mut ffi::PyHeapTypeObject;
            if let Some(q) = shims::unicode_to_string((*heap).ht_qualname) {
                return q;
            }
        }
        let name = tp_name(ty);
        match name.rfind('.') {
            Some(dot) => name[dot + 1..].to_owned(),
            None => name,
        }
    }
}

/// Objects whose size needs their Python-level `__sizeof__`, each held by a strong
/// reference taken during the walk so that running that code afterwards cannot free them.
#[derive(Default)]
pub struct DeferredSizes {
    pending: Vec<(usize, *mut ffi::PyObject)>,
}

impl DeferredSizes {
    /// Records `op` under caller-chosen `slot`, taking a strong reference (an INCREF can
    /// never free anything, so this is allowed during the walk).
    ///
    /// # Safety
    /// GIL held; `op` live.
    #[inline]
    pub unsafe fn defer(&mut self, slot: usize, op: *mut ffi::PyObject) {
        // SAFETY: live object.
        unsafe { ffi::Py_INCREF(op) };
        self.pending.push((slot, op));
    }

    /// Where no Python code may run (a forked child): sizes objects whose `__sizeof__` is
    /// implemented in C (`io.BytesIO`, extension types: C code only, through
    /// `sys.getsizeof`), and reports the others (a `__sizeof__` written in Python) as
    /// unsized. The references are left as they are: the child that took them only exits.
    pub fn resolve_native(self, mut report: impl FnMut(usize, Option<u64>)) {
        // SAFETY: GIL held by this (only) thread; every pending object is alive.
        unsafe {
            let getsizeof = ffi::PySys_GetObject(c"getsizeof".as_ptr());
            for (slot, op) in self.pending {
                let ty = ffi::Py_TYPE(op) as *mut ffi::PyObject;
                let method = ffi::PyObject_GetAttrString(ty, c"__sizeof__".as_ptr());
                let native = !method.is_null()
                    && ffi::PyObject_TypeCheck(method, &raw mut ffi::PyMethodDescr_Type) != 0;
                if method.is_null() {
                    ffi::PyErr_Clear();
                } else {
                    ffi::Py_DECREF(method);
                }
                if !native || getsizeof.is_null() {
                    report(slot, None);
                    continue;
                }
                let size = ffi::PyObject_CallOneArg(getsizeof, op);
                if size.is_null() {
                    ffi::PyErr_Clear();
                    report(slot, None);
                    continue;
                }
                let value = ffi::PyLong_AsSsize_t(size);
                ffi::Py_DECREF(size);
                if value < 0 {
                    ffi::PyErr_Clear();
                    report(slot, None);
                } else {
                    report(slot, Some(value as u64));
                }
            }
        }
    }

    /// Runs `sys.getsizeof` on each object (after the walk) and reports `(slot, size)`;
    /// `None` when `__sizeof__` failed. Releases the references.
    pub fn resolve(
        self,
        py: Python<'_>,
        mut report: impl FnMut(usize, Option<u64>),
    ) -> PyResult<()> {
        let getsizeof = py.import("sys")?.getattr("getsizeof")?;
        for (slot, op) in self.pending {
            // SAFETY: we own the reference taken in `defer`; it is handed to Bound here.
            let obj = unsafe { Bound::from_owned_ptr(py, op) };
            let size = match getsizeof.call1((&obj,)) {
                Ok(s) => s.extract::<u64>().ok(),
                Err(_) => None,
            };
            report(slot, size);
        }
        Ok(())
    }
}

/// Fallback size when `__sizeof__` failed: the fixed part of the object.
///
/// # Safety
/// GIL held; `op` live.
pub unsafe fn basic_size(op: *mut ffi::PyObject) -> u64 {
    // SAFETY: reads type fields of a live object.
    unsafe {
        let ty = ffi::Py_TYPE(op);
        let gc_extra = if ffi::PyType_IS_GC(ty) != 0 { 16 } else { 0 };
        (*ty).tp_basicsize as u64 + gc_extra
    }
}

/// One census row.
pub struct TypeRow {
    pub name: String,
    pub count: u64,
    pub bytes: u64,
}

/// Counts and bytes per type over every gc-tracked object, frozen ones included.
pub fn census_rows(py: Python<'_>) -> PyResult<Vec<TypeRow>> {
    let pause = GcPause::new(py)?;
    let source = TrackedSource::open(&pause)?;
    let mut table = TypeTable::default();
    let mut counts: Vec<(u64, u64)> = Vec::new();
    let mut deferred = DeferredSizes::default();
    let mut sizer = NativeSizer::new();
    let mut tally = |op: *mut ffi::PyObject,
                     table: &mut TypeTable,
                     counts: &mut Vec<(u64, u64)>,
                     deferred: &mut DeferredSizes| {
        // SAFETY: `op` comes from the gc lists, live while the GIL is held.
        let ty = unsafe { ffi::Py_TYPE(op) };
        let i = table.index_of(ty) as usize;
        if i == counts.len() {
            counts.push((0, 0));
        }
        counts[i].0 += 1;
        // SAFETY: as above.
        match unsafe { sizer.size(op) } {
            Some(size) => counts[i].1 += size,
            // SAFETY: as above.
            None => unsafe { deferred.defer(i, op) },
        }
    };
    // SAFETY: GIL held, gc paused; the closure creates no Python objects.
    unsafe {
        source.for_each(|op, _frozen| tally(op, &mut table, &mut counts, &mut deferred));
    }
    if let TrackedSource::Listed(list) = &source {
        let mut listed = Vec::with_capacity(list.len());
        // SAFETY: as above.
        unsafe { source.for_each(|op, _| listed.push(op)) };
        // SAFETY: as above.
        let frozen = unsafe { gc_lists::tracked_closure(&listed) };
        drop(listed);
        for op in frozen {
            tally(op, &mut table, &mut counts, &mut deferred);
        }
    }
    // Names before any Python code runs: user `__sizeof__` could free a type.
    // SAFETY: every type in the table has live instances until then.
    let names: Vec<String> = table
        .types
        .iter()
        .map(|&ty| unsafe { shims::type_qualified_name(ty) })
        .collect();
    drop(source);
    deferred.resolve(py, |i, size| {
        counts[i].1 += size.unwrap_or(0);
    })?;
    drop(pause);
    Ok(names
        .into_iter()
        .zip(counts)
        .map(|(name, (count, bytes))| TypeRow { name, count, bytes })
        .collect())
}

/// `census() -> dict[str, tuple[int, int]]`: `{type_name: (count, bytes)}` over every
/// gc-tracked object, frozen ones included. Two types with the same qualified name are
/// merged at this level (they stay apart in snapshots).
#[pyfunction]
pub fn census<'py>(py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
    let rows = census_rows(py)?;
    let mut merged: std::collections::HashMap<String, (u64, u64)> = Default::default();
    for row in rows {
        let e = merged.entry(row.name).or_default();
        e.0 += row.count;
        e.1 += row.bytes;
    }
    let out = PyDict::new(py);
    for (name, counts) in merged {
        out.set_item(name, counts)?;
    }
    Ok(out)
}

/// `typestats() -> dict[str, int]`: objgraph-style counts per type name.
#[pyfunction]
pub fn typestats<'py>(py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
    let rows = census_rows(py)?;
    let mut merged: std::collections::HashMap<String, u64> = Default::default();
    for row in rows {
        *merged.entry(row.name).or_default() += row.count;
    }
    let out = PyDict::new(py);
    for (name, count) in merged {
        out.set_item(name, count)?;
    }
    Ok(out)
}
