//! The heap snapshot: its in-memory model and the `.hsnap` file format.
//!
//! Invariant: this crate knows nothing about Python and does no analysis; it only holds,
//! validates, writes and reads snapshots. The file format is specified in
//! `docs/snapshot-format.md`.
//!
//! - [`write_file`] / [`read_file`]: atomic write, fully validating read.
//! - [`write_packed_file`]: the capture's write, from a [`PackedSnapshot`] (the file's own
//!   payloads, built as the heap is walked).
//! - [`encode`] / [`decode`]: the same, in memory.
//! - [`read_metadata`]: header and metadata only, for `heapsight info`.
//! - [`write_atomic`]: the same atomic replace for any other output (reports).

mod columns;
mod decode;
mod encode;
mod error;
mod file;
mod keys;
pub mod layout;
pub mod model;
mod packed;
pub mod parallel;
mod varint;

pub use columns::SnapshotCounts;
pub use decode::{decode, SnapshotInfo};
pub use encode::{encode, encode_packed, write_to, SectionSize, WriteStats, COMPRESSION_LEVEL};
pub use error::{ForeignKind, FormatError};
pub use file::{read_file, read_metadata, write_atomic, write_file, write_packed_file};
pub use keys::{external_roots, KeyError, KeyIndex, KeyedRoot, LocalNames, SLOT_SHIFT};
pub use layout::{Section, FORMAT_VERSION};
pub use model::*;
pub use packed::{
    AddressColumn, PackedColumn, PackedNode, PackedNodes, PackedSnapshot, PackedValues,
};
