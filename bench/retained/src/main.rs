//! `heapsight_bench_retained SNAPSHOT ADDRESS...`: reads a `.hsnap`, computes the dominator
//! tree with `heapsight_graph`, and prints one JSON object: the time of each phase and
//! the retained size of the node at each address (null when the snapshot has no such
//! node). Used by bench/graph.py to time heapsight's dominators on a real Python heap.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use heapsight_graph::{DominatorTree, Graph};
use heapsight_snapshot::model::NodeIdx;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next().map(PathBuf::from) else {
        eprintln!("usage: heapsight_bench_retained SNAPSHOT [ADDRESS...]");
        return ExitCode::from(2);
    };
    let mut addresses = Vec::new();
    for arg in args {
        match arg.parse::<u64>() {
            Ok(address) => addresses.push(address),
            Err(e) => {
                eprintln!("not an address: {arg:?}: {e}");
                return ExitCode::from(2);
            }
        }
    }

    let started = Instant::now();
    let snapshot = match heapsight_snapshot::read_file(&path) {
        Ok(snapshot) => snapshot,
        Err(e) => {
            eprintln!("cannot read {}: {e}", path.display());
            return ExitCode::from(1);
        }
    };
    let read_s = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let graph = match Graph::new(&snapshot) {
        Ok(graph) => graph,
        Err(e) => {
            eprintln!("cannot index {}: {e}", path.display());
            return ExitCode::from(1);
        }
    };
    let index_s = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let tree = DominatorTree::compute(&graph);
    let dominators_s = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let wanted: HashMap<u64, usize> =
        addresses.iter().enumerate().map(|(i, a)| (*a, i)).collect();
    let mut retained: Vec<Option<u64>> = vec![None; addresses.len()];
    for (index, address) in snapshot.nodes.address.iter().enumerate() {
        if let Some(&slot) = wanted.get(address) {
            let node = NodeIdx(index as u32);
            retained[slot] = Some(tree.retained_size(node));
        }
    }
    let lookup_s = started.elapsed().as_secs_f64();

    let sizes: Vec<String> = retained
        .iter()
        .map(|r| r.map_or_else(|| "null".to_owned(), |v| v.to_string()))
        .collect();
    println!(
        "{{\"nodes\": {}, \"edges\": {}, \"read_s\": {read_s:.6}, \"index_s\": {index_s:.6}, \
         \"dominators_s\": {dominators_s:.6}, \"lookup_s\": {lookup_s:.6}, \
         \"retained\": [{}]}}",
        graph.n_nodes(),
        graph.n_edges(),
        sizes.join(", ")
    );
    ExitCode::SUCCESS
}
