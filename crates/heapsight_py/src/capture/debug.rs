//! Python-visible probes for tests of the per-version decoders.
//!
//! Each probe first runs the native decoder on raw pointers (no Python objects created while
//! decoding), and only afterwards builds Python results from what it collected.

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use super::{attrs, shims, sizes};

/// `sys.getsizeof(obj)` computed natively, or `None` when `__sizeof__` must be called.
#[pyfunction]
fn _debug_sizeof(obj: &Bound<'_, PyAny>) -> Option<u64> {
    // SAFETY: `obj` is a live object and the GIL is held for the duration of the call.
    unsafe { sizes::native_size(obj.as_ptr()) }
}

/// Sizes every object of `objects` with one [`sizes::NativeSizer`] (as a walk does) and
/// returns `(natively sized count, their total bytes, attributes decoded)`; for timing.
#[pyfunction]
fn _debug_size_sweep(objects: &Bound<'_, PyList>) -> (u64, u64, u64) {
    let mut sizer = sizes::NativeSizer::new();
    let (mut count, mut total, mut attributes) = (0u64, 0u64, 0u64);
    for obj in objects.iter() {
        // SAFETY: `obj` is kept alive by the list; the GIL is held and nothing in the loop
        // body runs Python code.
        unsafe {
            if let Some(size) = sizer.size(obj.as_ptr()) {
                count += 1;
                total += size;
            }
            attrs::for_each_attr(obj.as_ptr(), |_, _| attributes += 1);
        }
    }
    (count, total, attributes)
}

/// `(name, value)` pairs of the instance's attributes decoded read-only, or `None` when the
/// layout is unknown.
#[pyfunction]
fn _debug_attrs<'py>(obj: &Bound<'py, PyAny>) -> Option<Vec<Bound<'py, PyTuple>>> {
    let py = obj.py();
    let mut raw: Vec<(*mut ffi::PyObject, *mut ffi::PyObject)> = Vec::new();
    // SAFETY: `obj` is live and the GIL is held; the callback only records pointers.
    let source =
        unsafe { attrs::for_each_attr(obj.as_ptr(), |name, value| raw.push((name, value))) };
    if source == attrs::AttrSource::Unknown {
        return None;
    }
    let pairs = raw
        .into_iter()
        .map(|(name, value)| {
            // SAFETY: both pointers are borrowed references kept alive by `obj` (nothing ran
            // between the decode and here that could release them).
            let (name, value) = unsafe {
                (
                    Bound::from_borrowed_ptr(py, name),
                    Bound::from_borrowed_ptr(py, value),
                )
            };
            PyTuple::new(py, [name, value])
        })
        .collect::<PyResult<Vec<_>>>()
        .ok()?;
    Some(pairs)
}

/// Where `_debug_attrs` found the attributes: "empty", "slots", "dict", "values" or
/// "unknown".
#[pyfunction]
fn _debug_attr_source(obj: &Bound<'_, PyAny>) -> &'static str {
    // SAFETY: `obj` is live and the GIL is held; the callback does nothing.
    match unsafe { attrs::for_each_attr(obj.as_ptr(), |_, _| {}) } {
        attrs::AttrSource::Empty => "empty",
        attrs::AttrSource::Slots => "slots",
        attrs::AttrSource::Dict => "dict",
        attrs::AttrSource::SharedKeyValues => "values",
        attrs::AttrSource::Unknown => "unknown",
    }
}

/// The instance's existing `__dict__` (never creating one), or `None`.
#[pyfunction]
fn _debug_dict_of<'py>(obj: &Bound<'py, PyAny>) -> Option<Bound<'py, PyAny>> {
    // SAFETY: `obj` is live and the GIL is held; the dict is kept alive by `obj`.
    unsafe {
        attrs::dict_of(obj.as_ptr()).map(|found| Bound::from_borrowed_ptr(obj.py(), found.dict))
    }
}

/// `module.QualName` of `type(obj)` computed natively.
#[pyfunction]
fn _debug_type_name(obj: &Bound<'_, PyAny>) -> String {
    // SAFETY: `obj` is live and the GIL is held.
    unsafe { shims::type_qualified_name(shims::type_of(obj.as_ptr())) }
}

/// Whether `obj` is immortal (always false before 3.12).
#[pyfunction]
fn _debug_is_immortal(obj: &Bound<'_, PyAny>) -> bool {
    // SAFETY: `obj` is live.
    unsafe { shims::is_immortal(obj.as_ptr()) }
}

/// `(major, minor)` of the running interpreter as detected natively, or `None`.
#[pyfunction]
fn _debug_runtime_version() -> Option<(u32, u32)> {
    shims::runtime_version().map(|version| (version.major, version.minor))
}

/// Whether the running interpreter's layouts are known to the decoders.
#[pyfunction]
fn _debug_layout_supported() -> bool {
    shims::layout().is_some()
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_debug_sizeof, m)?)?;
    m.add_function(wrap_pyfunction!(_debug_attrs, m)?)?;
    m.add_function(wrap_pyfunction!(_debug_size_sweep, m)?)?;
    m.add_function(wrap_pyfunction!(_debug_attr_source, m)?)?;
    m.add_function(wrap_pyfunction!(_debug_dict_of, m)?)?;
    m.add_function(wrap_pyfunction!(_debug_type_name, m)?)?;
    m.add_function(wrap_pyfunction!(_debug_is_immortal, m)?)?;
    m.add_function(wrap_pyfunction!(_debug_runtime_version, m)?)?;
    m.add_function(wrap_pyfunction!(_debug_layout_supported, m)?)?;
    Ok(())
}
