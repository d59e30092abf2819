//! The parts of the analysis report (`docs/report-schema.md`) and of the `heapsight run`
//! result (`docs/run.md`) the HTML page shows, read leniently: every field has a default, so
//! an older or newer producer, or a run without snapshots, still gives a page.

use serde::Deserialize;
use serde_json::Value;

/// Reads `value` as `T`, or the default plus why not (shown on the page as a note).
pub(crate) fn read<T: for<'de> Deserialize<'de> + Default>(
    value: Option<&Value>,
    what: &str,
    notes: &mut Vec<String>,
) -> T {
    match value {
        None | Some(Value::Null) => T::default(),
        Some(value) => T::deserialize(value).unwrap_or_else(|error| {
            notes.push(format!("part of the {what} could not be read: {error}"));
            T::default()
        }),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Report {
    pub before: Summary,
    pub after: Summary,
    pub change: Change,
    pub verdicts: Vec<SeriesVerdict>,
    pub type_growth: Vec<TypeGrowth>,
    pub suspects: Vec<Suspect>,
    pub dominators: Vec<Dominator>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Summary {
    pub pid: u64,
    pub python_version: String,
    pub rss_bytes: u64,
    pub n_objects: u64,
    pub heap_bytes: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Change {
    pub elapsed_seconds: Option<f64>,
    pub n_new: u64,
    pub n_gone: u64,
    pub heap_bytes_delta: i64,
    pub rss_bytes_delta: Option<i64>,
    pub heap_growth_per_hour: Option<f64>,
    pub different_processes: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct SeriesVerdict {
    pub kind: String,
    pub label: String,
    pub explanation: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct TypeGrowth {
    pub type_name: String,
    pub count_before: u64,
    pub count_after: u64,
    pub count_delta: i64,
    pub bytes_after: u64,
    pub bytes_delta: i64,
    pub new_count: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Suspect {
    pub rank: u64,
    pub type_name: String,
    pub count_growth: u64,
    pub bytes_growth: u64,
    pub shapes: Vec<Shape>,
    pub representative_path: Vec<String>,
    pub accumulation_point: Option<Accumulation>,
    pub fixes: Vec<Fix>,
    pub folded: Vec<Folded>,
    pub headline: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Shape {
    pub shape: String,
    pub count: u64,
    pub bytes: u64,
    pub share_percent: f64,
    pub example_path: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Accumulation {
    pub type_name: String,
    pub path: Vec<String>,
    pub retained_bytes: u64,
    pub dominated_targets: u64,
    pub total_targets: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Fix {
    pub code: String,
    pub title: String,
    pub advice: String,
    pub example: String,
    pub use_instead: String,
    pub why_it_works: String,
    pub matched_because: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Folded {
    pub type_name: String,
    pub count: u64,
    pub bytes: u64,
    pub how: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Dominator {
    pub type_name: String,
    pub name: Option<String>,
    pub retained_bytes: u64,
    pub shallow_bytes: u64,
    pub share_percent: f64,
    pub is_new: bool,
    pub path: Vec<String>,
}

/// The result of `heapsight run --json`, plus the census series (`series`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Run {
    /// The app's command line, when the caller adds it.
    pub command: Vec<String>,
    pub verdict: String,
    pub mode: String,
    pub endpoints: Vec<Endpoint>,
    pub workers: Vec<Worker>,
    pub suspects: Vec<RunSuspect>,
    pub snapshot_worker: Option<u64>,
    pub notes: Vec<String>,
    pub series: Option<Series>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Endpoint {
    pub endpoint: String,
    pub requests: u64,
    pub verdict: String,
    pub explanation: String,
    pub top_growth: Vec<Growth>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Growth {
    #[serde(rename = "type")]
    pub type_name: String,
    pub count: i64,
    pub bytes: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Worker {
    pub pid: u64,
    pub rss_before_bytes: Option<u64>,
    pub rss_after_bytes: Option<u64>,
    pub requests: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RunSuspect {
    #[serde(rename = "type")]
    pub type_name: String,
    pub count_growth: i64,
    pub size_growth_bytes: i64,
    pub retainer_path: Vec<String>,
    pub endpoints: Vec<String>,
    pub fix: String,
    pub accumulation_point: Option<String>,
    pub allocation_sites: Vec<AllocationSite>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct AllocationSite {
    pub site: String,
    pub stack: Vec<String>,
    pub count: u64,
}

/// Census series of a run: one phase per driven endpoint (or one for watched traffic).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Series {
    /// `requests` or `seconds`.
    pub x_unit: String,
    pub phases: Vec<Phase>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Phase {
    pub endpoint: String,
    /// x of each census, from 0 at the start of the phase.
    pub x: Vec<f64>,
    /// Per worker pid: RSS bytes at each census (`null` where the worker was not seen).
    pub rss: std::collections::BTreeMap<String, Vec<Option<f64>>>,
    /// Per worker pid: gc-tracked objects at each census.
    pub objects: std::collections::BTreeMap<String, Vec<Option<f64>>>,
    /// Per type: instances summed over the workers at each census.
    pub types: std::collections::BTreeMap<String, Vec<Option<f64>>>,
}
