//! Errors of the graph crate.

use heapsight_snapshot::model::ModelError;

/// Why a [`crate::Graph`] could not be built over a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    /// The snapshot breaks its own invariants.
    #[error(transparent)]
    InvalidSnapshot(#[from] ModelError),
    /// Edge positions are stored as `u32` (one value reserved as a sentinel).
    #[error("{0} edges exceed the graph limit of 2^32 - 1")]
    TooManyEdges(usize),
    /// Node indices are stored as `u32`, with two values reserved (super-root, sentinel).
    #[error("{0} nodes exceed the graph limit of 2^32 - 2")]
    TooManyNodes(usize),
    /// Root indices are stored as `u32` (one value reserved as a sentinel).
    #[error("{0} roots exceed the graph limit of 2^32 - 1")]
    TooManyRoots(usize),
}
