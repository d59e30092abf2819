//! heapsight_export: views of a [`Snapshot`](heapsight_snapshot::Snapshot) made for other
//! consumers than heapsight's own analysis.
//!
//! - [`refs`]: the neighbourhood of a few objects as a drawable [`RefGraph`](heapsight_report::RefGraph).
//!   `heapsight graph` and the Python `show_backrefs` / `show_refs` both call it, so the CLI
//!   and the API draw the same picture for the same objects.
//! - [`chrome`]: the whole snapshot as a V8 `.heapsnapshot` file that Chrome DevTools' Memory
//!   panel and memlab load (`heapsight export --format chrome`); the mapping is documented in
//!   `docs/chrome-export.md`.
//!
//! No printing; files are written atomically.

#![warn(missing_docs)]

pub mod chrome;
pub mod refs;
