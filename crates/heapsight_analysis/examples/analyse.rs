//! Prints the JSON report of two `.hsnap` files: a development aid for checking the
//! analysis on real heaps without building the Python extension.
//!
//! `cargo run --release -p heapsight_analysis --example analyse -- before.hsnap after.hsnap`

use std::process::ExitCode;

use heapsight_analysis::{build_report, ReportOptions};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [before, after] = args.as_slice() else {
        eprintln!("usage: analyse BEFORE.hsnap AFTER.hsnap");
        return ExitCode::from(2);
    };
    let load = |path: &str| {
        heapsight_snapshot::read_file(std::path::Path::new(path))
            .map_err(|e| eprintln!("cannot read {path}: {e}"))
            .ok()
    };
    let (Some(a), Some(b)) = (load(before), load(after)) else {
        return ExitCode::from(2);
    };
    match build_report(&a, &b, &[], &ReportOptions::default()) {
        Ok(report) => match serde_json::to_string_pretty(&report) {
            Ok(json) => {
                println!("{json}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("cannot serialise the report: {e}");
                ExitCode::from(2)
            }
        },
        Err(e) => {
            eprintln!("cannot analyse: {e}");
            ExitCode::from(2)
        }
    }
}
