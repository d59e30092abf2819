//! The report of the shared scenario, and its JSON against `docs/report-schema.md`.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use common::scenario;
use heapsight_analysis::{
    build_report, AnalysisError, Report, ReportOptions, Series, VerdictKind, XUnit, YUnit,
    REPORT_SCHEMA_VERSION,
};
use serde_json::Value;

fn rss_series() -> Series {
    let points: Vec<(f64, f64)> = (0..30)
        .map(|i| (f64::from(i) * 20.0, 180e6 + f64::from(i) * 1e6))
        .collect();
    Series::new("rss", XUnit::Seconds, YUnit::Bytes, &points)
}

fn report() -> Report {
    let a = scenario(false, 200);
    let b = scenario(true, 200);
    build_report(&a, &b, &[rss_series()], &ReportOptions::default())
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn report_gathers_every_part() {
    let r = report();
    assert_eq!(r.schema_version, REPORT_SCHEMA_VERSION);
    assert_eq!(r.verdicts.len(), 1);
    assert_eq!(r.verdicts[0].kind, VerdictKind::Leak);
    assert_eq!(r.change.elapsed_seconds, Some(600.0));
    assert_eq!(r.change.rss_bytes_delta, Some(20 << 20));
    assert!(!r.change.different_processes);
    let per_hour = r.change.heap_growth_per_hour.unwrap_or(0.0);
    assert!((per_hour - r.change.heap_bytes_delta as f64 * 6.0).abs() < 1e-6);
    let names: Vec<&str> = r.suspects.iter().map(|s| s.type_name.as_str()).collect();
    assert_eq!(names, vec!["app.UserSession", "bytearray"]);
    let buffer = &r.suspects[1];
    assert_eq!(buffer.fixes.first().map(|f| f.code), Some("HS015"));
    // A lone buffer that grew is its own accumulation point.
    let point = buffer
        .accumulation_point
        .as_ref()
        .map(|p| (p.type_name.as_str(), p.path.len()));
    assert_eq!(point, Some(("bytearray", 3)));
    // Types that grew come first, shrunk ones (the replaced requests did not shrink in
    // number, so none here) after.
    assert_eq!(
        r.type_growth.first().map(|t| t.type_name.as_str()),
        Some("list")
    );
    assert!(r
        .type_growth
        .iter()
        .all(|t| t.count_delta != 0 || t.bytes_delta != 0));
}

#[test]
fn dominator_table_collapses_chains() {
    let r = report();
    let types: Vec<&str> = r.dominators.iter().map(|d| d.type_name.as_str()).collect();
    // The capturing thread's 10 MB list is the largest retainer; the module and its
    // namespace dict, which retain little more than their globals, are collapsed away.
    assert_eq!(r.dominators[0].type_name, "list");
    assert_eq!(
        r.dominators[0].path,
        vec!["thread MainThread", "->frame", "local 'tmp'", "list"]
    );
    assert!(r.dominators[0].is_new);
    assert!(types.contains(&"bytearray"), "{types:?}");
    assert!(!types.contains(&"module"), "{types:?}");
    let sum: f64 = r.dominators.iter().map(|d| d.share_percent).sum();
    assert!(sum <= 100.0 + 1e-9);
}

#[test]
fn invalid_snapshots_are_typed_errors() {
    let a = scenario(false, 1);
    let mut b = scenario(true, 1);
    b.nodes.size.pop();
    let err = build_report(&a, &b, &[], &ReportOptions::default());
    assert!(matches!(
        err,
        Err(AnalysisError::InvalidSnapshot { which: "after", .. })
    ));
    let nan = Series::new("rss", XUnit::Seconds, YUnit::Bytes, &[(0.0, f64::NAN)]);
    let err = build_report(&a, &a, &[nan], &ReportOptions::default());
    assert!(matches!(err, Err(AnalysisError::Series(_))));
}

#[test]
fn series_from_a_run_of_snapshots() {
    use heapsight_analysis::series_from_snapshots;
    use heapsight_snapshot::model::SnapshotBuilder;
    // Twelve captures a minute apart, given out of order; RSS grows 1 MiB a minute.
    let snapshots: Vec<_> = (0..12u64)
        .rev()
        .map(|i| {
            let mut b = SnapshotBuilder::new();
            let meta = b.metadata_mut();
            meta.time_unix_ms = 1_700_000_000_000 + i * 60_000;
            meta.rss_bytes = (100 << 20) + i * (1 << 20);
            for _ in 0..=i {
                b.node("app.Item", 1000);
            }
            b.finish()
        })
        .collect();
    let refs: Vec<_> = snapshots.iter().collect();
    let series = series_from_snapshots(&refs);
    let labels: Vec<&str> = series.iter().map(|s| s.label.as_str()).collect();
    assert_eq!(labels, vec!["heap bytes", "object count", "rss"]);
    let rss = &series[2];
    assert_eq!(rss.x_unit, XUnit::Seconds);
    assert_eq!(
        rss.samples.first().map(|p| (p.x, p.y)),
        Some((0.0, f64::from(100 << 20)))
    );
    assert_eq!(rss.samples.last().map(|p| p.x), Some(660.0));
    assert_eq!(series[1].samples.last().map(|p| p.y), Some(12.0));
    let verdict =
        heapsight_analysis::assess(rss, &Default::default()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(verdict.kind, VerdictKind::Leak);
    assert_eq!(verdict.growth_per_hour, Some(60.0 * f64::from(1 << 20)));
}

/// Every object key path of `value`, as `a.b[].c`.
fn key_paths(value: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.insert(path.clone());
                key_paths(v, &path, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                key_paths(item, &format!("{prefix}[]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn every_json_field_is_documented() {
    let json = serde_json::to_value(report()).unwrap_or_else(|e| panic!("{e}"));
    let mut paths = BTreeSet::new();
    key_paths(&json, "", &mut paths);
    let doc_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/report-schema.md");
    let doc = std::fs::read_to_string(&doc_path)
        .unwrap_or_else(|e| panic!("{}: {e}", doc_path.display()));
    let missing: Vec<&String> = paths
        .iter()
        .filter(|p| !doc.contains(&format!("`{p}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "fields not documented in docs/report-schema.md: {missing:#?}"
    );
    assert!(doc.contains(&format!("Schema version: {REPORT_SCHEMA_VERSION}")));
}

/// The scenario's whole JSON report, compared with `tests/golden/scenario_report.json`
/// so that any change of the output shows in review. `UPDATE_GOLDEN=1` rewrites it.
#[test]
fn report_json_matches_golden_file() {
    let mut json = serde_json::to_string_pretty(&report()).unwrap_or_else(|e| panic!("{e}"));
    json.push('\n');
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/scenario_report.json");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &json).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        json == expected,
        "report JSON differs from {}; review and run UPDATE_GOLDEN=1 cargo test -p heapsight_analysis --test report",
        path.display()
    );
}
