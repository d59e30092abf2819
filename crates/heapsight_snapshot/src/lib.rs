//! The heap snapshot: its in-memory model and the `.hsnap` file format.
//!
//! Invariant: this crate knows nothing about Python and does no analysis; it only holds,
//! validates, writes and reads snapshots. The file format is specified in
//! `docs/snapshot-format.md`.
//!
//! - [`write_file`] / [`read_file`]: atomic write, fully validating read.
//! - [`encode`] / [`decode`]: the same, in memory.
//! - [`read_metadata`]: header and metadata only, for `heapsight info`.
//! - [`write_atomic`]: the same atomic replace for any other output (reports).

mod columns;
mod decode;
mod encode;
mod error;
mod file;
pub mod layout;
pub mod model;
mod varint;

pub use columns::SnapshotCounts;
pub use decode::{decode, SnapshotInfo};
pub use encode::{encode, write_to, SectionSize, WriteStats, COMPRESSION_LEVEL};
pub use error::{ForeignKind, FormatError};
pub use file::{read_file, read_metadata, write_atomic, write_file};
pub use layout::{Section, FORMAT_VERSION};
pub use model::*;
