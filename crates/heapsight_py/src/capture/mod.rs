//! Heap capture: census and full snapshot, walked in Rust while holding the GIL.
//!
//! Module map (each file one concern):
//! - `shims`: interpreter version detection and per-version layout facts.
//! - `sizes`: native `sys.getsizeof`-equivalent sizes per builtin type and version.
//! - `attrs`: read-only decoding of instance attributes (`__dict__`, managed dicts, inline
//!   values, `__slots__`) without materialising anything.
//! - `gc_lists`: enumerating every gc-tracked object, frozen ones included.
//! - `census`: counts and bytes per type.
//! - `walk`: the full graph walk producing a `heapsight_snapshot::Snapshot`.
//! - `nodeset`: the walk's set of discovered objects and the 32-bit codes its edges keep.
//! - `debug`: small Python-visible probes used by tests (`_debug_sizeof`, `_debug_attrs`).

pub mod attrs;
pub mod bounds;
pub mod census;
pub mod debug;
pub mod fork;
pub mod frames;
pub mod gc_lists;
pub mod nodeset;
pub mod pure_traverse;
pub mod shims;
pub mod sizes;
pub mod walk;

use std::path::{Path, PathBuf};
use std::time::Instant;

use heapsight_snapshot::{Metadata, NodeIdx, PackedSnapshot, Snapshot, SnapshotCounts, NO_STR};
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use gc_lists::{AddressMap, GcPause, TrackedSource};
use walk::CaptureOptions;

/// Registers the capture functions on the extension module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    debug::register(m)?;
    fork::register(m)?;
    m.add_function(wrap_pyfunction!(census::census, m)?)?;
    m.add_function(wrap_pyfunction!(census::typestats, m)?)?;
    m.add_function(wrap_pyfunction!(snapshot, m)?)?;
    m.add_function(wrap_pyfunction!(capture_heap, m)?)?;
    m.add_function(wrap_pyfunction!(objects_of_type, m)?)?;
    m.add_function(wrap_pyfunction!(objects_at, m)?)?;
    m.add_function(wrap_pyfunction!(_debug_load, m)?)?;
    m.add_class::<CapturedHeap>()?;
    Ok(())
}

/// Writes a snapshot file (the only places the capture touches the file format).
fn write_snapshot(path: &Path, snap: &Snapshot) -> PyResult<u64> {
    let stats = heapsight_snapshot::write_file(path, snap).map_err(|e| write_error(path, e))?;
    Ok(stats.file_bytes)
}

fn write_packed_snapshot(path: &Path, snap: &PackedSnapshot) -> PyResult<u64> {
    let stats =
        heapsight_snapshot::write_packed_file(path, snap).map_err(|e| write_error(path, e))?;
    Ok(stats.file_bytes)
}

fn write_error(path: &Path, e: heapsight_snapshot::FormatError) -> PyErr {
    PyOSError::new_err(format!("cannot write {}: {e}", path.display()))
}

/// `snapshot(path, include_values=False) -> dict`: captures the heap and writes it to
/// `path`; returns a summary (counts and timings in milliseconds).
#[pyfunction]
#[pyo3(signature = (path, include_values = false))]
fn snapshot<'py>(
    py: Python<'py>,
    path: PathBuf,
    include_values: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let started = Instant::now();
    let snap = walk::capture_packed(py, &CaptureOptions { include_values })?;
    let capture_ms = started.elapsed().as_secs_f64() * 1e3;
    let write_started = Instant::now();
    let file_bytes = py.detach(|| write_packed_snapshot(&path, &snap))?;
    let write_ms = write_started.elapsed().as_secs_f64() * 1e3;
    let out = summary(py, snap.counts(), &snap.metadata)?;
    out.set_item("path", path.display().to_string())?; // a str: converting a PathBuf would import pathlib mid-measurement
    out.set_item("file_bytes", file_bytes)?;
    out.set_item("walk_threads", walk::last_walk_threads())?;
    out.set_item("capture_ms", capture_ms)?;
    out.set_item("write_ms", write_ms)?;
    Ok(out)
}

fn summary<'py>(
    py: Python<'py>,
    counts: SnapshotCounts,
    metadata: &Metadata,
) -> PyResult<Bound<'py, PyDict>> {
    let out = PyDict::new(py);
    out.set_item("nodes", counts.n_nodes)?;
    out.set_item("edges", counts.n_edges)?;
    out.set_item("roots", counts.n_roots)?;
    out.set_item("types", counts.n_types)?;
    out.set_item("gc_tracked", metadata.n_gc_tracked)?;
    out.set_item("frozen", metadata.n_frozen)?;
    out.set_item("walk_ms", metadata.walk_ms)?;
    out.set_item("include_values", metadata.include_values)?;
    Ok(out)
}

/// A captured heap held in memory (no file), for in-process analysis.
#[pyclass(frozen, module = "heapsight._heapsight")]
pub struct CapturedHeap {
    snapshot: Snapshot,
}

impl CapturedHeap {
    pub fn new(snapshot: Snapshot) -> Self {
        CapturedHeap { snapshot }
    }

    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }
}

#[pymethods]
impl CapturedHeap {
    fn __len__(&self) -> usize {
        self.snapshot.n_nodes()
    }

    /// Counts and timings, as returned by `snapshot()`.
    fn summary<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        // As `snapshot()` counts them: the roots the capture names, not the external ones
        // derived from reference counts.
        let named_roots = self
            .snapshot
            .roots
            .iter()
            .filter(|r| r.kind != heapsight_snapshot::RootKind::External)
            .count();
        let counts = SnapshotCounts {
            n_roots: named_roots as u64,
            ..SnapshotCounts::of(&self.snapshot)
        };
        summary(py, counts, &self.snapshot.metadata)
    }

    /// Writes the held snapshot to `path`; returns the file size in bytes.
    fn write(&self, py: Python<'_>, path: PathBuf) -> PyResult<u64> {
        py.detach(|| write_snapshot(&path, &self.snapshot))
    }

    /// Nodes, edges and roots as Python lists (tests and debugging; large).
    fn _debug_tables<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        tables(py, &self.snapshot)
    }

    fn __repr__(&self) -> String {
        format!(
            "<CapturedHeap nodes={} edges={} roots={}>",
            self.snapshot.n_nodes(),
            self.snapshot.edges.len(),
            self.snapshot.roots.len()
        )
    }
}

/// `capture_heap(include_values=False) -> CapturedHeap`.
#[pyfunction]
#[pyo3(signature = (include_values = false))]
fn capture_heap(py: Python<'_>, include_values: bool) -> PyResult<CapturedHeap> {
    let snap = walk::capture(py, &CaptureOptions { include_values })?;
    Ok(CapturedHeap::new(snap))
}

/// Every live gc-tracked object (frozen ones included), collected under a gc pause. Each
/// object gets a strong reference while still in the lists, so nothing can be freed before
/// the caller builds its result.
fn collect_tracked<'py>(
    py: Python<'py>,
    mut keep: impl FnMut(*mut ffi::PyObject) -> bool,
) -> PyResult<Vec<Bound<'py, PyAny>>> {
    let pause = GcPause::new(py)?;
    let source = TrackedSource::open(&pause)?;
    let mut picked: Vec<*mut ffi::PyObject> = Vec::new();
    // SAFETY: GIL held, gc paused; the closure creates nothing (INCREF frees nothing).
    unsafe {
        source.for_each(|op, _| {
            if keep(op) {
                ffi::Py_INCREF(op);
                picked.push(op);
            }
        });
    }
    if let TrackedSource::Listed(list) = &source {
        let mut listed = Vec::with_capacity(list.len());
        // SAFETY: as above.
        unsafe { source.for_each(|op, _| listed.push(op)) };
        // SAFETY: as above.
        for op in unsafe { gc_lists::tracked_closure(&listed) } {
            if keep(op) {
                // SAFETY: live object found by traversal under the GIL.
                unsafe { ffi::Py_INCREF(op) };
                picked.push(op);
            }
        }
    }
    drop(source);
    drop(pause);
    Ok(picked
        .into_iter()
        // SAFETY: each pointer carries the reference taken above.
        .map(|op| unsafe { Bound::from_owned_ptr(py, op) })
        .collect())
}

/// `objects_of_type(name) -> list`: live gc-tracked objects whose type's qualified name
/// (`module.QualName`, builtins bare) is `name`.
#[pyfunction]
fn objects_of_type<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyList>> {
    let mut verdict: AddressMap<bool> = AddressMap::default();
    let objects = collect_tracked(py, |op| {
        // SAFETY: live object under the GIL.
        let ty = unsafe { ffi::Py_TYPE(op) };
        *verdict
            .entry(ty as usize)
            // SAFETY: live type object.
            .or_insert_with(|| unsafe { shims::type_qualified_name(ty) } == name)
    })?;
    PyList::new(py, objects)
}

/// `objects_at(addresses) -> list`: live gc-tracked objects whose `id()` is among
/// `addresses`. Found by walking the gc lists, never by casting an integer to a pointer.
#[pyfunction]
fn objects_at<'py>(py: Python<'py>, addresses: Vec<u64>) -> PyResult<Bound<'py, PyList>> {
    let wanted: AddressMap<()> = addresses.iter().map(|a| (*a as usize, ())).collect();
    let objects = collect_tracked(py, |op| wanted.contains_key(&(op as usize)))?;
    PyList::new(py, objects)
}

/// `_debug_load(path) -> dict`: reads a snapshot file back and returns its tables as Python
/// lists (tests).
#[pyfunction]
fn _debug_load<'py>(py: Python<'py>, path: PathBuf) -> PyResult<Bound<'py, PyDict>> {
    let snap = py
        .detach(|| heapsight_snapshot::read_file(&path))
        .map_err(|e| PyValueError::new_err(format!("cannot read {}: {e}", path.display())))?;
    tables(py, &snap)
}

/// Nodes as `(address, type_name, size, flags, refcount, name, length)`, edges as
/// `(source, target, label_kind, label)` (label: str for string kinds, else int), roots as
/// `(kind, node, name, extra)`, plus the string table and metadata.
fn tables<'py>(py: Python<'py>, snap: &Snapshot) -> PyResult<Bound<'py, PyDict>> {
    // Millions of fresh tuples would otherwise trigger repeated collections.
    let _pause = GcPause::new(py)?;
    let text = |id| {
        if id == NO_STR {
            None
        } else {
            snap.str(id).map(str::to_owned)
        }
    };
    let nodes = PyList::empty(py);
    let n = &snap.nodes;
    for i in 0..snap.n_nodes() {
        nodes.append((
            n.address[i],
            snap.type_name(NodeIdx(i as u32)),
            n.size[i],
            n.flags[i],
            n.refcount[i],
            text(n.name[i]),
            n.length[i],
        ))?;
    }
    let edges = PyList::empty(py);
    for i in 0..snap.n_nodes() {
        for e in snap.edges.range_of(NodeIdx(i as u32)) {
            let kind = snap.edges.label_kinds[e];
            let value = snap.edges.label_values[e];
            let label = if kind.value_is_str() {
                text(heapsight_snapshot::StrId(value))
                    .into_pyobject(py)?
                    .into_any()
            } else {
                value.into_pyobject(py)?.into_any()
            };
            edges.append((i, snap.edges.targets[e].0, kind as u8, label))?;
        }
    }
    let roots = PyList::empty(py);
    for r in &snap.roots {
        roots.append((r.kind as u8, r.node.0, text(r.name), r.extra))?;
    }
    let out = PyDict::new(py);
    out.set_item("nodes", nodes)?;
    out.set_item("edges", edges)?;
    out.set_item("roots", roots)?;
    out.set_item("strings", PyList::new(py, &snap.strings.strings)?)?;
    let m = &snap.metadata;
    out.set_item("n_gc_tracked", m.n_gc_tracked)?;
    out.set_item("n_frozen", m.n_frozen)?;
    out.set_item("include_values", m.include_values)?;
    out.set_item("walk_ms", m.walk_ms)?;
    out.set_item("python_version", &m.python_version)?;
    Ok(out)
}
