//! Capacities of bounded containers: `functools.lru_cache(maxsize=N)` wrappers and
//! `collections.deque(maxlen=N)`.
//!
//! Growth held by such a container stops at its capacity: a cache that is still filling is
//! not a leak, and the analysis needs the capacity to say so. Neither type exposes the
//! field in a public C struct, and their layouts differ between versions, so the field is
//! found by probing: before the walk, two instances with distinctive capacities are built
//! and the one word that holds each capacity gives the offset. During the walk (and in a
//! forked child) reading it is one load: no Python code runs.

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyType};

/// Capacities stored by CPython as a `Py_ssize_t`; `-1` means "no bound".
const PROBE_A: isize = 0x1F2E_3D4C_5B6A_7988;
const PROBE_B: isize = 0x0E1D_2C3B_4A59_6877;

/// A type whose instances keep their capacity at a fixed offset.
#[derive(Debug)]
pub struct CapacityField {
    /// Held, so that the address compared during walks can never name another type.
    ty: Py<PyType>,
    /// Byte offset of the `Py_ssize_t` capacity from the object start.
    pub offset: usize,
}

/// The bounded container types of this interpreter whose layout could be probed.
#[derive(Debug, Default)]
pub struct BoundedTypes {
    fields: Vec<CapacityField>,
}

impl BoundedTypes {
    /// The probed types, found once per process (the probe builds and drops a few
    /// objects, which should not happen in every capture's pause).
    pub fn get(py: Python<'_>) -> &'static BoundedTypes {
        // PyOnceLock, not OnceLock: the probe runs Python code, which may let another
        // thread take the GIL and block on the lock while this one waits for the GIL.
        static PROBED: pyo3::sync::PyOnceLock<BoundedTypes> = pyo3::sync::PyOnceLock::new();
        PROBED.get_or_init(py, || BoundedTypes::probe(py))
    }

    /// Probes `functools._lru_cache_wrapper` and `collections.deque`. A type whose field
    /// cannot be located unambiguously is left out: its containers are then simply not
    /// known to be bounded.
    fn probe(py: Python<'_>) -> BoundedTypes {
        let lru = |maxsize: Option<isize>| -> PyResult<Bound<'_, PyAny>> {
            let kwargs = PyDict::new(py);
            kwargs.set_item("maxsize", maxsize)?;
            let decorator = py
                .import("functools")?
                .getattr("lru_cache")?
                .call((), Some(&kwargs))?;
            decorator.call1((py.import("builtins")?.getattr("len")?,))
        };
        let deque = |maxlen: Option<isize>| -> PyResult<Bound<'_, PyAny>> {
            let kwargs = PyDict::new(py);
            kwargs.set_item("maxlen", maxlen)?;
            py.import("collections")?
                .getattr("deque")?
                .call((), Some(&kwargs))
        };
        let fields = [probe_one(lru), probe_one(deque)]
            .into_iter()
            .filter_map(|probed| probed.ok().flatten())
            .collect();
        BoundedTypes { fields }
    }

    /// The capacity field of instances of `ty`, if it is one of the probed types.
    pub fn field_of(&self, ty: *mut ffi::PyTypeObject) -> Option<usize> {
        self.fields
            .iter()
            .find(|f| std::ptr::eq(f.ty.as_ptr() as *mut ffi::PyTypeObject, ty))
            .map(|f| f.offset)
    }
}

/// Reads the capacity of a probed container: `None` when unbounded.
///
/// # Safety
/// `op` a live instance of the type `offset` was probed for.
#[inline]
pub unsafe fn read_capacity(op: *mut ffi::PyObject, offset: usize) -> Option<u64> {
    // SAFETY: the offset lies inside tp_basicsize of this exact type (checked by the probe).
    let raw = unsafe { std::ptr::read_unaligned((op as *const u8).add(offset) as *const isize) };
    u64::try_from(raw).ok()
}

fn probe_one<'py>(
    make: impl Fn(Option<isize>) -> PyResult<Bound<'py, PyAny>>,
) -> PyResult<Option<CapacityField>> {
    let a = make(Some(PROBE_A))?;
    let b = make(Some(PROBE_B))?;
    let unbounded = make(None)?;
    let held = a.get_type();
    let ty = held.as_ptr() as *mut ffi::PyTypeObject;
    if !held.is(b.get_type()) || !held.is(unbounded.get_type()) {
        return Ok(None);
    }
    // SAFETY: a live type object.
    let basic = unsafe { (*ty).tp_basicsize }.max(0) as usize;
    let word = std::mem::size_of::<isize>();
    let header = std::mem::size_of::<ffi::PyObject>();
    let read = |op: *mut ffi::PyObject, offset: usize| {
        // SAFETY: offset + word <= tp_basicsize, inside the object.
        unsafe { std::ptr::read_unaligned((op as *const u8).add(offset) as *const isize) }
    };
    let mut found = None;
    let mut offset = header;
    while offset + word <= basic {
        if read(a.as_ptr(), offset) == PROBE_A
            && read(b.as_ptr(), offset) == PROBE_B
            && read(unbounded.as_ptr(), offset) == -1
        {
            if found.is_some() {
                return Ok(None); // ambiguous: trust neither
            }
            found = Some(offset);
        }
        offset += word;
    }
    Ok(found.map(|offset| CapacityField {
        ty: held.unbind(),
        offset,
    }))
}
