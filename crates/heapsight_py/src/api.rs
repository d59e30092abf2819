//! The native half of the objgraph-style API: questions answered on a [`CapturedHeap`]
//! (paths from roots, referrer searches, reference graphs). The GIL is released for the
//! graph work: a captured heap is plain Rust data.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;

use heapsight_export::refs;
use heapsight_graph::{paths, render, Graph};
use heapsight_report::{GraphFormat, RenderOptions};
use heapsight_snapshot::{NodeIdx, Snapshot};
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::capture::CapturedHeap;

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(heap_path_to, m)?)?;
    m.add_function(wrap_pyfunction!(heap_paths_to, m)?)?;
    m.add_function(wrap_pyfunction!(heap_backref_search, m)?)?;
    m.add_function(wrap_pyfunction!(heap_render_refs, m)?)?;
    m.add_function(wrap_pyfunction!(write_atomic, m)?)?;
    Ok(())
}

/// Node lookup by address for the handful of objects a question names.
fn nodes_at(snapshot: &Snapshot, addresses: &[u64]) -> HashMap<u64, NodeIdx> {
    let wanted: HashSet<u64> = addresses.iter().copied().collect();
    snapshot
        .nodes
        .address
        .iter()
        .enumerate()
        .filter(|(_, a)| wanted.contains(a))
        .map(|(i, a)| (*a, NodeIdx(i as u32)))
        .collect()
}

fn graph_of(snapshot: &Snapshot) -> PyResult<Graph<'_>> {
    Graph::new(snapshot).map_err(|e| PyValueError::new_err(format!("unusable heap capture: {e}")))
}

/// A per-node "do not pass through" mask from addresses.
fn avoid_mask(snapshot: &Snapshot, ignore: &[u64]) -> Vec<bool> {
    let mut mask = vec![false; snapshot.n_nodes()];
    for node in nodes_at(snapshot, ignore).into_values() {
        mask[node.index()] = true;
    }
    mask
}

fn rendered_path(graph: &Graph<'_>, target: NodeIdx, avoid: &[bool]) -> Option<Vec<String>> {
    let path = paths::path_to_single_avoiding(graph, target, |n| avoid[n.index()])?;
    Some(render::render_path(graph.snapshot(), &path))
}

/// `heap_path_to(heap, address, ignore) -> list[str] | None`.
#[pyfunction]
fn heap_path_to(
    py: Python<'_>,
    heap: &CapturedHeap,
    address: u64,
    ignore: Vec<u64>,
) -> PyResult<Option<Vec<String>>> {
    Ok(heap_paths_to(py, heap, vec![address], ignore)?
        .pop()
        .flatten())
}

/// `heap_paths_to(heap, addresses, ignore) -> list[list[str] | None]`: one graph index for
/// many questions.
#[pyfunction]
fn heap_paths_to(
    py: Python<'_>,
    heap: &CapturedHeap,
    addresses: Vec<u64>,
    ignore: Vec<u64>,
) -> PyResult<Vec<Option<Vec<String>>>> {
    let snapshot = heap.snapshot();
    py.detach(|| {
        let graph = graph_of(snapshot)?;
        let avoid = avoid_mask(snapshot, &ignore);
        let found = nodes_at(snapshot, &addresses);
        Ok(addresses
            .iter()
            .map(|a| {
                found
                    .get(a)
                    .and_then(|&node| rendered_path(&graph, node, &avoid))
            })
            .collect())
    })
}

/// `heap_backref_search(heap, address, max_depth, ignore) -> (order, parents)`: breadth-first
/// over referrers; `parents[a]` is the address one step closer to the start.
#[pyfunction]
fn heap_backref_search(
    py: Python<'_>,
    heap: &CapturedHeap,
    address: u64,
    max_depth: usize,
    ignore: Vec<u64>,
) -> PyResult<(Vec<u64>, HashMap<u64, u64>)> {
    let snapshot = heap.snapshot();
    py.detach(|| {
        let graph = graph_of(snapshot)?;
        let avoid = avoid_mask(snapshot, &ignore);
        let Some(&start) = nodes_at(snapshot, &[address]).get(&address) else {
            return Ok((vec![address], HashMap::new()));
        };
        let addr = |n: NodeIdx| snapshot.nodes.address[n.index()];
        let mut order = vec![address];
        let mut parents = HashMap::new();
        let mut depth_of: HashMap<NodeIdx, usize> = HashMap::from([(start, 0)]);
        let mut queue = VecDeque::from([start]);
        while let Some(node) = queue.pop_front() {
            let depth = depth_of[&node];
            if depth >= max_depth {
                continue;
            }
            for (referrer, _) in graph.predecessors(node) {
                if avoid[referrer.index()] || depth_of.contains_key(&referrer) {
                    continue;
                }
                depth_of.insert(referrer, depth + 1);
                parents.insert(addr(referrer), addr(node));
                order.push(addr(referrer));
                queue.push_back(referrer);
            }
        }
        Ok((order, parents))
    })
}

/// `heap_render_refs(heap, addresses, direction, max_depth, too_many, ignore, format) -> bytes`.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn heap_render_refs<'py>(
    py: Python<'py>,
    heap: &CapturedHeap,
    addresses: Vec<u64>,
    direction: &str,
    max_depth: usize,
    too_many: usize,
    ignore: Vec<u64>,
    format: &str,
) -> PyResult<Bound<'py, PyBytes>> {
    let direction = match direction {
        "back" => refs::Direction::Back,
        "forward" => refs::Direction::Forward,
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown direction {other:?}"
            )))
        }
    };
    let format = match format {
        "dot" => GraphFormat::Dot,
        "svg" => GraphFormat::Svg,
        "png" => GraphFormat::Png,
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown graph format {other:?}"
            )))
        }
    };
    let snapshot = heap.snapshot();
    let bytes = py.detach(|| {
        let graph = graph_of(snapshot)?;
        let avoid = avoid_mask(snapshot, &ignore);
        let found = nodes_at(snapshot, &addresses);
        let starts: Vec<NodeIdx> = addresses
            .iter()
            .filter_map(|a| found.get(a).copied())
            .collect();
        let options = refs::RefsOptions {
            direction,
            max_depth,
            too_many,
        };
        // The same builder as `heapsight graph`, so the API and the CLI draw the same picture.
        let drawn = refs::reference_graph(&graph, &starts, &options, |n| avoid[n.index()]);
        heapsight_report::render(&drawn, format, &RenderOptions::default())
            .map(|r| r.bytes)
            .map_err(|e| PyValueError::new_err(format!("cannot draw the graph: {e}")))
    })?;
    Ok(PyBytes::new(py, &bytes))
}

/// `write_atomic(path, data)`: temp file in the same directory, then rename.
#[pyfunction]
fn write_atomic(py: Python<'_>, path: PathBuf, data: Vec<u8>) -> PyResult<()> {
    py.detach(|| heapsight_snapshot::write_atomic(&path, &data))
        .map_err(|e| PyOSError::new_err(format!("cannot write {}: {e}", path.display())))
}
