//! Size budget (at most 10 bytes per node on disk, edges included) and speed reports.
//!
//! The reports are ignored by default; run them optimised:
//! `cargo test --release -p heapsight_snapshot --test size_and_speed -- --ignored --nocapture`

mod common;

use std::time::{Duration, Instant};

use heapsight_snapshot::{decode, encode, read_file, write_file, WriteStats};

const BYTES_PER_NODE_BUDGET: f64 = 10.0;

/// Runs `f`, returning its result, wall time and on-CPU time of this thread (the machine
/// is shared, so wall time alone says little). CPU time is 0 where Linux's schedstat is
/// missing.
fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration, Duration) {
    fn on_cpu() -> Duration {
        std::fs::read_to_string("/proc/thread-self/schedstat")
            .ok()
            .and_then(|s| s.split_whitespace().next().and_then(|ns| ns.parse().ok()))
            .map(Duration::from_nanos)
            .unwrap_or_default()
    }
    let (wall, cpu) = (Instant::now(), on_cpu());
    let value = f();
    (value, wall.elapsed(), on_cpu().saturating_sub(cpu))
}

fn report(label: &str, stats: &WriteStats) {
    println!(
        "{label}: {} nodes, {} edges ({:.2}/node): {} bytes on disk = {:.2} bytes/node \
         ({} bytes before compression)",
        stats.n_nodes,
        stats.n_edges,
        stats.n_edges as f64 / stats.n_nodes.max(1) as f64,
        stats.file_bytes,
        stats.bytes_per_node(),
        stats.raw_bytes(),
    );
    for s in &stats.sections {
        println!(
            "  {:<16} {:>12} stored {:>12} raw  {:.3} bytes/node",
            s.section.to_string(),
            s.stored_bytes,
            s.raw_bytes,
            s.stored_bytes as f64 / stats.n_nodes.max(1) as f64
        );
    }
}

#[test]
fn synthetic_heap_fits_the_size_budget() {
    let snap = common::synthetic_web_heap(200_000, 7);
    let dir = tempfile::tempdir().expect("tempdir");
    let stats = write_file(&dir.path().join("budget.hsnap"), &snap).expect("write");
    let edges_per_node = stats.n_edges as f64 / stats.n_nodes as f64;
    assert!(
        (1.8..2.4).contains(&edges_per_node),
        "the heap should be typical: {edges_per_node} edges/node"
    );
    assert!(
        stats.bytes_per_node() <= BYTES_PER_NODE_BUDGET,
        "{:.2} bytes/node exceeds the budget of {BYTES_PER_NODE_BUDGET}",
        stats.bytes_per_node()
    );
}

#[test]
#[ignore = "report; run with --release --ignored --nocapture"]
fn report_bytes_per_node_for_one_million_nodes() {
    let snap = common::synthetic_web_heap(1_000_000, 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("million.hsnap");
    let (stats, write_wall, write_cpu) = timed(|| write_file(&path, &snap).expect("write"));
    report("synthetic web heap", &stats);
    let (back, read_wall, read_cpu) = timed(|| read_file(&path).expect("read"));
    println!(
        "write_file {write_wall:.2?} ({write_cpu:.2?} on CPU), read_file {read_wall:.2?} ({read_cpu:.2?} on CPU)"
    );
    assert!(back == snap);
}

#[test]
#[ignore = "report; run with --release --ignored --nocapture"]
fn report_speed_for_seven_million_nodes() {
    let start = Instant::now();
    let snap = common::synthetic_web_heap(7_000_000, 3);
    println!(
        "generated {} nodes, {} edges in {:.2?}",
        snap.n_nodes(),
        snap.edges.len(),
        start.elapsed()
    );
    let (bytes, encode_wall, encode_cpu) = timed(|| encode(&snap).expect("encode"));
    let (back, decode_wall, decode_cpu) = timed(|| decode(&bytes).expect("decode"));
    println!(
        "encode {encode_wall:.2?} ({encode_cpu:.2?} on CPU), decode {decode_wall:.2?} \
         ({decode_cpu:.2?} on CPU), {} bytes = {:.2} bytes/node",
        bytes.len(),
        bytes.len() as f64 / snap.n_nodes() as f64
    );
    assert!(back == snap);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("seven.hsnap");
    let (_, write_wall, write_cpu) = timed(|| write_file(&path, &snap).expect("write"));
    let (_, read_wall, read_cpu) = timed(|| read_file(&path).expect("read"));
    println!(
        "write_file (with fsync) {write_wall:.2?} ({write_cpu:.2?} on CPU), read_file \
         {read_wall:.2?} ({read_cpu:.2?} on CPU)"
    );
}
