//! Everything the analyses need from one snapshot, computed on two threads when the
//! machine has two cores.
//!
//! The work splits into two independent chains that only share the (read-only)
//! snapshot: the dominator tree (DFS numbering, then predecessors, semidominators,
//! immediate dominators, retained sizes) and the shortest paths from the roots with
//! the retainer shape of every node (one BFS). The dominators' DFS reads forward
//! edges only, so it also runs beside the building of the reverse index, which the
//! rest of the dominator computation needs. With two threads:
//!
//! ```text
//! calling thread:  validate ─ DFS ──────────┬─ predecessors, semidominators, idoms, sizes
//! helper thread:              reverse index ┘  BFS paths + shapes
//! ```
//!
//! Results are identical whichever way it runs: each part is the same deterministic
//! code. Peak memory is the sum of what the two chains hold at once (see
//! `bench/RESULTS.md`), still within 80 bytes per node plus 12 per edge on the
//! benchmark heap.

use std::thread;

use heapsight_snapshot::model::Snapshot;

use crate::dominators::{Dfs, DominatorTree};
use crate::error::GraphError;
use crate::graph::{build_reverse, Graph};
use crate::paths::PathTree;
use crate::shapes::{shortest_paths_and_shapes, ShapeIndex};

/// How [`GraphIndex::build_with`] runs its independent parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Threads {
    /// One after the other, on the calling thread.
    One,
    /// The calling thread and one helper thread.
    Two,
}

impl Threads {
    /// [`Threads::Two`] when the process may run on two cores or more.
    pub fn available() -> Threads {
        match thread::available_parallelism() {
            Ok(n) if n.get() >= 2 => Threads::Two,
            _ => Threads::One,
        }
    }
}

/// The graph view, dominator tree and shortest-path tree (with every node's retainer
/// shape) of one snapshot.
pub struct GraphIndex<'s> {
    /// Forward and reverse edges.
    pub graph: Graph<'s>,
    /// Dominator tree and retained sizes.
    pub dominators: DominatorTree,
    /// Shortest paths from the roots; carries the shapes, so [`ShapeIndex::new`] on it
    /// computes none.
    pub paths: PathTree,
}

impl<'s> GraphIndex<'s> {
    /// Validates `snapshot` and computes everything, on two threads when the machine
    /// has two cores ([`Threads::available`]).
    pub fn build(snapshot: &'s Snapshot) -> Result<Self, GraphError> {
        GraphIndex::build_with(snapshot, Threads::available())
    }

    /// [`GraphIndex::build`] with the threading chosen by the caller. A helper thread
    /// the system refuses to start is replaced by doing its work in the calling thread.
    pub fn build_with(snapshot: &'s Snapshot, threads: Threads) -> Result<Self, GraphError> {
        let mut graph = Graph::without_reverse(snapshot)?;
        let (dominators, paths) = match threads {
            Threads::One => {
                graph.set_reverse(build_reverse(snapshot));
                let dominators = DominatorTree::compute(&graph);
                (dominators, paths_with_shapes(&graph))
            }
            Threads::Two => {
                let (dfs, reverse) = thread::scope(|s| {
                    let helper = thread::Builder::new()
                        .name("heapsight-reverse-index".into())
                        .spawn_scoped(s, || build_reverse(snapshot));
                    let dfs = Dfs::run(&graph);
                    let reverse = match helper {
                        Ok(handle) => join(handle),
                        Err(_) => build_reverse(snapshot),
                    };
                    (dfs, reverse)
                });
                graph.set_reverse(reverse);
                let graph = &graph;
                thread::scope(|s| {
                    let helper = thread::Builder::new()
                        .name("heapsight-paths".into())
                        .spawn_scoped(s, || paths_with_shapes(graph));
                    let dominators = DominatorTree::finish(dfs, graph);
                    let paths = match helper {
                        Ok(handle) => join(handle),
                        Err(_) => paths_with_shapes(graph),
                    };
                    (dominators, paths)
                })
            }
        };
        Ok(GraphIndex {
            graph,
            dominators,
            paths,
        })
    }

    /// A shape index over [`GraphIndex::paths`], reading the shapes computed with them.
    pub fn shape_index(&self) -> ShapeIndex<'_> {
        ShapeIndex::new(self.graph.snapshot(), &self.paths)
    }
}

fn paths_with_shapes(graph: &Graph) -> PathTree {
    let (mut paths, memo) = shortest_paths_and_shapes(graph);
    paths.shapes = Some(memo);
    paths
}

/// The helper's result; a panic in it is passed on to the caller as it was.
fn join<T>(handle: thread::ScopedJoinHandle<'_, T>) -> T {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}
