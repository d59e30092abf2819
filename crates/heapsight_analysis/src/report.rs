//! The analysis result of two snapshots (and optional measurement series) as one
//! serialisable value: what `heapsight report A B --json` prints.
//!
//! The JSON shape is versioned by [`REPORT_SCHEMA_VERSION`] and documented in
//! `docs/report-schema.md`: adding a field is a minor change within a version; renaming,
//! removing or changing the meaning of one bumps the version.

use heapsight_graph::{render_path, GraphError};
use heapsight_snapshot::model::{ModelError, NodeIdx, Snapshot, NO_STR};
use serde::Serialize;

use crate::diff::{SnapshotDiff, TypeGrowth};
use crate::suspects::{find_suspects, HeapIndex, Suspect, SuspectOptions};
use crate::verdict::{assess, Series, Verdict, VerdictConfig, VerdictError, XUnit, YUnit};

/// Version of the report's JSON shape.
pub const REPORT_SCHEMA_VERSION: u32 = 1;

/// Why a report could not be built.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    /// One of the snapshots breaks the model's invariants.
    #[error("snapshot {which} is invalid: {source}")]
    InvalidSnapshot {
        /// `before` or `after`.
        which: &'static str,
        /// The broken invariant.
        #[source]
        source: ModelError,
    },
    /// The graph of the later snapshot could not be built.
    #[error("cannot index the later snapshot: {0}")]
    Graph(#[from] GraphError),
    /// A measurement series is unusable.
    #[error(transparent)]
    Series(#[from] VerdictError),
}

/// Tuning of a report. Defaults are the documented behaviour.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ReportOptions {
    /// How suspects are searched.
    pub suspects: SuspectOptions,
    /// How series are judged.
    pub verdict: VerdictConfig,
    /// Rows of the type table kept among types that grew, and again among types that shrank.
    pub type_rows: usize,
    /// Entries of the dominator table.
    pub dominators_top_n: usize,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            suspects: SuspectOptions::default(),
            verdict: VerdictConfig::default(),
            type_rows: 50,
            dominators_top_n: 10,
        }
    }
}

/// Identity and size of one snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SnapshotSummary {
    /// Process id at capture.
    pub pid: u32,
    /// `sys.version` of the captured interpreter.
    pub python_version: String,
    /// Capture time, ms since the Unix epoch (0 if unknown).
    pub time_unix_ms: u64,
    /// Resident set size at capture, 0 when unknown.
    pub rss_bytes: u64,
    /// Objects in the snapshot.
    pub n_objects: u64,
    /// Sum of shallow sizes of every object.
    pub heap_bytes: u64,
    /// Distinct types.
    pub n_types: u64,
    /// Roots (modules, threads, native references, interpreter objects).
    pub n_roots: u64,
}

impl SnapshotSummary {
    /// Summarises `snapshot`.
    pub fn of(snapshot: &Snapshot) -> Self {
        let m = &snapshot.metadata;
        SnapshotSummary {
            pid: m.pid,
            python_version: m.python_version.clone(),
            time_unix_ms: m.time_unix_ms,
            rss_bytes: m.rss_bytes,
            n_objects: snapshot.n_nodes() as u64,
            heap_bytes: snapshot.nodes.size.iter().sum(),
            n_types: snapshot.types.len() as u64,
            n_roots: snapshot.roots.len() as u64,
        }
    }
}

/// What changed between the snapshots, in totals.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HeapChange {
    /// Seconds between the captures, when both carry a time.
    pub elapsed_seconds: Option<f64>,
    /// Objects of B absent from A.
    pub n_new: u64,
    /// Bytes of those objects.
    pub new_bytes: u64,
    /// Objects of A absent from B.
    pub n_gone: u64,
    /// Bytes of those objects.
    pub gone_bytes: u64,
    /// `after.heap_bytes - before.heap_bytes`.
    pub heap_bytes_delta: i64,
    /// `None` when either RSS is unknown.
    pub rss_bytes_delta: Option<i64>,
    /// Heap growth extrapolated to an hour, when the elapsed time is known and positive.
    pub heap_growth_per_hour: Option<f64>,
    /// Whether the snapshots seem to come from different processes (pid differs):
    /// object identity is then meaningless and every object counts as new.
    pub different_processes: bool,
}

/// A node retaining much of the heap.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DominatorEntry {
    /// Type of the object.
    pub type_name: String,
    /// The object's own name (module, class or function name) when it has one.
    pub name: Option<String>,
    /// Bytes freed if the object went away.
    pub retained_bytes: u64,
    /// The object's own size.
    pub shallow_bytes: u64,
    /// Retained bytes as a share of the heap, 0-100.
    pub share_percent: f64,
    /// Whether the object did not exist in the earlier snapshot.
    pub is_new: bool,
    /// Path from a root to the object.
    pub path: Vec<String>,
}

/// Everything the analysis found; see `docs/report-schema.md`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// [`REPORT_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// `heapsight_analysis <version>`.
    pub generator: String,
    /// Summary of snapshot A.
    pub before: SnapshotSummary,
    /// Summary of snapshot B.
    pub after: SnapshotSummary,
    /// Totals of what changed.
    pub change: HeapChange,
    /// One per measurement series given (none from the snapshots alone).
    pub verdicts: Vec<Verdict>,
    /// Types that grew (by bytes, then count), then types that shrank (most first).
    pub type_growth: Vec<TypeGrowth>,
    /// Leak suspects, best first.
    pub suspects: Vec<Suspect>,
    /// Largest retainers of the later snapshot (chains collapsed to their deepest node).
    pub dominators: Vec<DominatorEntry>,
    /// The thresholds used.
    pub options: ReportOptions,
}

/// Compares `before` and `after` and judges every series in `series`.
pub fn build_report(
    before: &Snapshot,
    after: &Snapshot,
    series: &[Series],
    options: &ReportOptions,
) -> Result<Report, AnalysisError> {
    before
        .validate()
        .map_err(|source| AnalysisError::InvalidSnapshot {
            which: "before",
            source,
        })?;
    after
        .validate()
        .map_err(|source| AnalysisError::InvalidSnapshot {
            which: "after",
            source,
        })?;
    let index = HeapIndex::build(after)?;
    build_report_with_index(before, &index, series, options)
}

/// [`build_report`] reusing an index of the later snapshot (`before` must be valid).
pub fn build_report_with_index(
    before: &Snapshot,
    after: &HeapIndex,
    series: &[Series],
    options: &ReportOptions,
) -> Result<Report, AnalysisError> {
    let snapshot = after.graph.snapshot();
    let verdicts = series
        .iter()
        .map(|s| assess(s, &options.verdict))
        .collect::<Result<Vec<_>, _>>()?;
    let diff = SnapshotDiff::compute(before, snapshot);
    let suspects = find_suspects(after, &diff, &options.suspects);
    let before_summary = SnapshotSummary::of(before);
    let after_summary = SnapshotSummary::of(snapshot);
    let change = heap_change(&before_summary, &after_summary, &diff);
    let mut type_growth: Vec<TypeGrowth> = diff.grown().take(options.type_rows).cloned().collect();
    type_growth.extend(diff.shrunk().take(options.type_rows).cloned());
    Ok(Report {
        schema_version: REPORT_SCHEMA_VERSION,
        generator: format!("heapsight_analysis {}", env!("CARGO_PKG_VERSION")),
        before: before_summary,
        after: after_summary,
        change,
        verdicts,
        type_growth,
        suspects,
        dominators: dominator_table(after, &diff, options.dominators_top_n),
        options: *options,
    })
}

/// Measurement series over a run of snapshots of one process, for [`build_report`]'s
/// verdicts: heap bytes and object count, plus RSS when every snapshot knows it. x is
/// seconds since the earliest capture, or the snapshot's position when a capture time
/// is missing. Snapshots may come in any order (they are sorted by time).
pub fn series_from_snapshots(snapshots: &[&Snapshot]) -> Vec<Series> {
    let timed = snapshots.iter().all(|s| s.metadata.time_unix_ms > 0);
    let mut ordered: Vec<&Snapshot> = snapshots.to_vec();
    if timed {
        ordered.sort_by_key(|s| s.metadata.time_unix_ms);
    }
    let start_ms = ordered.first().map_or(0, |s| s.metadata.time_unix_ms);
    let x_of = |i: usize, s: &Snapshot| {
        if timed {
            (s.metadata.time_unix_ms - start_ms) as f64 / 1000.0
        } else {
            i as f64
        }
    };
    let x_unit = if timed {
        XUnit::Seconds
    } else {
        XUnit::Samples
    };
    let collect = |f: &dyn Fn(&Snapshot) -> f64| -> Vec<(f64, f64)> {
        ordered
            .iter()
            .enumerate()
            .map(|(i, s)| (x_of(i, s), f(s)))
            .collect()
    };
    let mut series = vec![
        Series::new(
            "heap bytes",
            x_unit,
            YUnit::Bytes,
            &collect(&|s| s.nodes.size.iter().sum::<u64>() as f64),
        ),
        Series::new(
            "object count",
            x_unit,
            YUnit::Objects,
            &collect(&|s| s.n_nodes() as f64),
        ),
    ];
    if ordered.iter().all(|s| s.metadata.rss_bytes > 0) {
        series.push(Series::new(
            "rss",
            x_unit,
            YUnit::Bytes,
            &collect(&|s| s.metadata.rss_bytes as f64),
        ));
    }
    series
}

fn heap_change(
    before: &SnapshotSummary,
    after: &SnapshotSummary,
    diff: &SnapshotDiff,
) -> HeapChange {
    let elapsed_seconds = (before.time_unix_ms > 0 && after.time_unix_ms > 0)
        .then(|| (after.time_unix_ms as f64 - before.time_unix_ms as f64) / 1000.0);
    let heap_bytes_delta = after.heap_bytes as i64 - before.heap_bytes as i64;
    HeapChange {
        elapsed_seconds,
        n_new: diff.n_new,
        new_bytes: diff.new_bytes,
        n_gone: diff.n_gone,
        gone_bytes: diff.gone_bytes,
        heap_bytes_delta,
        rss_bytes_delta: (before.rss_bytes > 0 && after.rss_bytes > 0)
            .then(|| after.rss_bytes as i64 - before.rss_bytes as i64),
        heap_growth_per_hour: elapsed_seconds
            .filter(|s| *s > 0.0)
            .map(|s| heap_bytes_delta as f64 * 3600.0 / s),
        different_processes: before.pid != 0 && after.pid != 0 && before.pid != after.pid,
    }
}

/// The largest retainers, without the chains of nodes that retain nearly the same bytes
/// (a module, its `__dict__`, the dict global inside): of an ancestor and a descendant
/// both in the list, the ancestor is dropped when the descendant retains at least 90%
/// of it, since the descendant says more precisely where the memory is.
fn dominator_table(index: &HeapIndex, diff: &SnapshotDiff, top_n: usize) -> Vec<DominatorEntry> {
    let snapshot = index.graph.snapshot();
    let dom = &index.dominators;
    let total = dom.total_size().max(1);
    let pool = dom.top_retained(top_n.saturating_mul(4));
    let keep: Vec<(NodeIdx, u64)> = pool
        .iter()
        .filter(|&&(node, retained)| {
            !pool.iter().any(|&(other, other_retained)| {
                other != node
                    && dom.dominates(node, other)
                    && other_retained as f64 >= 0.9 * retained as f64
            })
        })
        .take(top_n)
        .copied()
        .collect();
    keep.into_iter()
        .map(|(node, retained)| {
            let name_id = snapshot
                .nodes
                .name
                .get(node.index())
                .copied()
                .unwrap_or(NO_STR);
            let has_value = snapshot
                .nodes
                .flags
                .get(node.index())
                .is_some_and(|f| f & heapsight_snapshot::model::node_flags::HAS_VALUE != 0);
            DominatorEntry {
                type_name: snapshot.type_name(node).to_owned(),
                name: (name_id != NO_STR && !has_value)
                    .then(|| snapshot.str(name_id).map(str::to_owned))
                    .flatten(),
                retained_bytes: retained,
                shallow_bytes: snapshot.nodes.size.get(node.index()).copied().unwrap_or(0),
                share_percent: retained as f64 * 100.0 / total as f64,
                is_new: diff.is_new(node),
                path: index
                    .paths
                    .path_to(node)
                    .map(|p| render_path(snapshot, &p))
                    .unwrap_or_default(),
            }
        })
        .collect()
}
