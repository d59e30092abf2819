//! The heap snapshot: its in-memory model and the `.hsnap` file format.
//!
//! Invariant: this crate knows nothing about Python and does no analysis; it only holds,
//! validates, writes and reads snapshots.

pub mod model;

pub use model::*;
