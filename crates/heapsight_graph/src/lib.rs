//! Graph algorithms over a heap [`Snapshot`](heapsight_snapshot::model::Snapshot).
//!
//! - [`Graph`]: forward edges from the snapshot's CSR plus a compact reverse index.
//! - Roots: a virtual super-root points at every root. For *paths*, Module, Thread and
//!   Interpreter roots are preferred; External roots (objects held from C) are a
//!   fallback ([`root_tier`]).
//! - Paths: [`shortest_paths_from_roots`] (one BFS for all nodes) and
//!   [`path_to_single`] (backward search for one node), rendered by [`render_path`].
//! - [`DominatorTree`]: immediate dominators and retained sizes from the super-root;
//!   unreachable nodes are attached to the super-root (see [`dominators`]).
//! - [`retainer_shapes`] and [`accumulation_point`]: how a set of objects is held.
//! - [`GraphIndex`]: the view, dominator tree, paths and every node's shape of one
//!   snapshot, built on two threads where there are two cores (what the analysis uses).
//!
//! Nothing here does I/O; every function is deterministic for a given snapshot.

#![warn(missing_docs)]

pub mod dominators;
pub mod error;
pub mod graph;
mod hash;
pub mod index;
mod mem;
pub mod paths;
pub mod render;
pub mod shapes;

pub use dominators::DominatorTree;
pub use error::GraphError;
pub use graph::{root_tier, EdgeIdx, Graph, RootIdx};
pub use index::{GraphIndex, Threads};
pub use paths::{path_to_single, shortest_paths_from_roots, Path, PathTree};
pub use render::{escape_quoted, path_steps, render_path, root_step, Step};
pub use shapes::{
    accumulation_point, percent, retainer_shapes, shortest_paths_and_shapes, AccumulationPoint,
    RetainerShape, ShapeIndex, ShapeMemo, ShapeReport, ShapeStep,
};
