//! What `run` and `attach` share: how to drive or watch the app, and what to write. Both
//! hand the diagnosis to the Python side (`heapsight.run.session`), which parses these
//! flags back with the same names.

use std::path::PathBuf;

use clap::ArgMatches;

#[derive(clap::Args, Debug)]
pub struct DiagnosisOptions {
    /// Drive this endpoint, as METHOD:URL on 127.0.0.1 (repeatable); `{i}` in the URL
    /// becomes the request number. Without --drive, real traffic is watched for --duration.
    #[arg(long, value_name = "METHOD:URL")]
    pub drive: Vec<String>,
    /// Request body of the --drive before it (a POST without --body sends an empty body).
    #[arg(long, value_name = "TEXT")]
    pub body: Vec<String>,
    /// Header `Name: value` of the --drive before it (repeatable).
    #[arg(long, value_name = "HEADER")]
    pub header: Vec<String>,
    /// Requests sent to each driven endpoint after warm-up.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(8..=1_000_000))]
    pub requests: u32,
    /// Warm-up requests per driven endpoint before the first snapshot (default: --requests, at least 300).
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub warmup: Option<u32>,
    /// Rounds per endpoint; every worker's census is taken after each round.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(8..=200))]
    pub rounds: u32,
    /// Without --drive: how long to watch real traffic, in seconds.
    #[arg(long, default_value_t = 60.0)]
    pub duration: f64,
    /// Without --drive: seconds between two censuses of every worker.
    #[arg(long, default_value_t = 5.0)]
    pub interval: f64,
    /// Idle pause before the last census when something grew: objects released on a timer
    /// (keep-alive timeouts) fall back and are not called a leak. Seconds.
    #[arg(long, default_value_t = 6.0)]
    pub settle: f64,
    /// Upper bound of the whole diagnosis in seconds (driving stops, the report is still
    /// written).
    #[arg(long, default_value_t = 900.0)]
    pub timeout: f64,
    /// Write the result as JSON to this file (`-` for stdout).
    #[arg(long, value_name = "OUT")]
    pub json: Option<PathBuf>,
    /// Also write a self-contained HTML report (charts per worker and endpoint, retainer
    /// graphs, sortable tables) to this file; it opens offline in any browser.
    #[arg(long, value_name = "OUT.html")]
    pub report: Option<PathBuf>,
    /// Record allocation sites of the suspects with tracemalloc (from interpreter start
    /// under `run`, from the moment of attaching under `attach`).
    #[arg(long)]
    pub trace_alloc: bool,
    /// Store short string values and every short dict key in the snapshots, so paths read
    /// `._CACHE['/items/42']` instead of `._CACHE[<str len 9>]`. Off by default: heap
    /// strings may hold secrets (tokens, passwords, personal data).
    #[arg(long)]
    pub include_values: bool,
}

/// The drives with their bodies and headers, in command-line order (clap keeps each
/// flag's values apart; the Python side needs them interleaved).
pub fn drive_items(matches: &ArgMatches) -> Vec<(&'static str, String)> {
    let mut items = occurrences(matches, "drive", "--drive");
    items.extend(occurrences(matches, "body", "--body"));
    items.extend(occurrences(matches, "header", "--header"));
    items.sort_by_key(|(index, _, _)| *index);
    items
        .into_iter()
        .map(|(_, flag, value)| (flag, value))
        .collect()
}

/// `(position, flag, value)` of every occurrence of `id`, for re-interleaving.
fn occurrences(
    matches: &ArgMatches,
    id: &str,
    flag: &'static str,
) -> Vec<(usize, &'static str, String)> {
    match (matches.indices_of(id), matches.get_many::<String>(id)) {
        (Some(indices), Some(values)) => indices
            .zip(values)
            .map(|(index, value)| (index, flag, value.clone()))
            .collect(),
        _ => Vec::new(),
    }
}

impl DiagnosisOptions {
    /// Appends these options, drives first, as the Python side parses them.
    pub fn forward(&self, drive_items: &[(&'static str, String)], out: &mut Vec<String>) {
        for (flag, value) in drive_items {
            out.push((*flag).to_owned());
            out.push(value.clone());
        }
        out.extend(["--requests".to_owned(), self.requests.to_string()]);
        if let Some(warmup) = self.warmup {
            out.extend(["--warmup".to_owned(), warmup.to_string()]);
        }
        out.extend(["--rounds".to_owned(), self.rounds.to_string()]);
        out.extend(["--duration".to_owned(), self.duration.to_string()]);
        out.extend(["--interval".to_owned(), self.interval.to_string()]);
        out.extend(["--settle".to_owned(), self.settle.to_string()]);
        out.extend(["--timeout".to_owned(), self.timeout.to_string()]);
        if let Some(json) = &self.json {
            out.extend(["--json".to_owned(), json.display().to_string()]);
        }
        if let Some(report) = &self.report {
            out.extend(["--report".to_owned(), report.display().to_string()]);
        }
        if self.trace_alloc {
            out.push("--trace-alloc".to_owned());
        }
        if self.include_values {
            out.push("--include-values".to_owned());
        }
    }
}
