#![warn(missing_docs)]
//! heapsight_analysis: the diagnosis engine.
//!
//! Invariant: pure functions of snapshots and series; no I/O, no Python, no printing.
//! Graph algorithms (dominators, retained sizes, paths, retainer shapes) come from
//! `heapsight_graph`; this crate decides what they mean.
//!
//! - [`verdict`]: is a series of measurements leaking? (Mann-Kendall, Theil-Sen, warm-up
//!   and plateau handling).
//! - [`stats`]: the non-parametric statistics behind verdicts.
//! - [`evidence`]: a retention path as facts rules can match.
//! - [`rules`]: the fix-suggestion catalogue (stable codes `HS001`...).
//! - [`diff`]: new objects and per-type growth between two snapshots.
//! - [`suspects`]: types whose growth survives, ranked and explained.
//! - [`report`]: all of the above as one serialisable [`Report`] (`docs/report-schema.md`).
//!
//! Typical use: `build_report(&before, &after, &series, &ReportOptions::default())`.

pub mod diff;
pub mod evidence;
pub mod report;
pub mod rules;
pub mod stats;
pub mod suspects;
pub mod verdict;

pub use diff::{SnapshotDiff, TypeGrowth};
pub use report::{
    build_report, build_report_with_index, series_from_snapshots, AnalysisError, Report,
    ReportOptions, REPORT_SCHEMA_VERSION,
};
pub use rules::{suggest_fixes, FixSuggestion, CATALOGUE};
pub use suspects::{find_suspects, HeapIndex, Suspect, SuspectOptions};
pub use verdict::{assess, Sample, Series, Verdict, VerdictConfig, VerdictKind, XUnit, YUnit};

/// Human-readable signed byte count (`+1.5 MiB`), binary units.
pub fn format_bytes_signed(bytes: f64) -> String {
    let sign = if bytes < 0.0 { "-" } else { "+" };
    format!("{sign}{}", format_bytes(bytes.abs()))
}

/// Human-readable byte count (`1.5 MiB`), binary units.
pub fn format_bytes(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes;
    let mut unit = 0;
    while value.abs() >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
