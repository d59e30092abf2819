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
//! - `debug`: small Python-visible probes used by tests (`_debug_sizeof`, `_debug_attrs`).

pub mod attrs;
pub mod census;
pub mod debug;
pub mod gc_lists;
pub mod shims;
pub mod sizes;
pub mod walk;

use pyo3::prelude::*;

/// Registers the capture functions on the extension module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    debug::register(m)?;
    Ok(())
}
