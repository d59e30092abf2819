//! Everything the analyses need from one snapshot, computed on two threads when the
//! machine has two cores.
//!
//! The work splits into two independent parts that share only the (read-only)
//! snapshot and root lookup: the dominator tree (DFS numbering, predecessor lists,
//! semidominators, immediate dominators, retained sizes) and the shortest paths from
//! the roots with the retainer shape of every node (one BFS). Neither needs the graph's
//! reverse index, so it is not built unless someone asks for predecessors later
//! ([`Graph::lazy`]). With two threads:
//!
//! ```text
//! calling thread:  validate, roots ─┬─ DFS ────────┬─ predecessor lists, semidominators, ─┬─
//!                                   │              │  idoms, retained sizes               │
//! helper thread:                    └─ in-degrees ─┴─ BFS paths + shapes ─────────────────┘
//! ```
//!
//! Results are identical whichever way it runs: each part is the same deterministic
//! code. Peak memory is the sum of what the two parts hold at once (see
//! `bench/RESULTS.md`).

use std::sync::mpsc;
use std::thread;

use heapsight_snapshot::model::Snapshot;

use crate::dominators::{in_degrees, DominatorTree};
use crate::error::GraphError;
use crate::graph::Graph;
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
        if cores_allowed() >= 2 {
            Threads::Two
        } else {
            Threads::One
        }
    }
}

/// Cores the process may run on, from its CPU affinity mask: one system call, where
/// `std::thread::available_parallelism` also reads cgroup files (this crate does no
/// I/O). A CPU quota below the mask is not seen; it only makes two threads share time.
#[cfg(target_os = "linux")]
fn cores_allowed() -> usize {
    // SAFETY: `cpu_set_t` is a plain bit array, valid when zeroed; sched_getaffinity
    // writes at most `size_of::<cpu_set_t>()` bytes into it, and CPU_COUNT only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
            usize::try_from(libc::CPU_COUNT(&set)).unwrap_or(1)
        } else {
            1
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn cores_allowed() -> usize {
    thread::available_parallelism().map_or(1, |n| n.get())
}

/// The graph view, dominator tree and shortest-path tree (with every node's retainer
/// shape) of one snapshot.
pub struct GraphIndex<'s> {
    /// Forward edges and roots; the reverse index is built on the first predecessor
    /// question ([`Graph::lazy`]).
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
        let graph = Graph::lazy(snapshot)?;
        let (dominators, paths) = match threads {
            Threads::One => (DominatorTree::compute(&graph), paths_with_shapes(&graph)),
            Threads::Two => thread::scope(|s| {
                // The helper first counts in-degrees, which the dominators need right
                // after their DFS, then searches the paths.
                let (degrees_tx, degrees_rx) = mpsc::sync_channel(1);
                let graph = &graph;
                let helper = thread::Builder::new()
                    .name("heapsight-paths".into())
                    .spawn_scoped(s, move || {
                        // A closed channel means the calling thread is unwinding.
                        let _ = degrees_tx.send(in_degrees(snapshot));
                        paths_with_shapes(graph)
                    });
                let dominators = DominatorTree::compute_with(graph, || {
                    // Counted here if the helper never started or died before sending.
                    degrees_rx.recv().unwrap_or_else(|_| in_degrees(snapshot))
                });
                let paths = match helper {
                    Ok(handle) => handle
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                    Err(_) => paths_with_shapes(graph),
                };
                (dominators, paths)
            }),
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
