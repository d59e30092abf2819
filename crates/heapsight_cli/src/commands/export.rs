//! `heapsight export FILE --format chrome -o heap.heapsnapshot`: a snapshot for other tools.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::progress::Progress;

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// A snapshot file (.hsnap).
    pub file: PathBuf,
    /// Output format: `chrome` writes a V8 .heapsnapshot for Chrome DevTools' Memory panel
    /// and memlab (see docs/chrome-export.md).
    #[arg(long, value_enum, default_value_t = ExportFormat::Chrome)]
    pub format: ExportFormat,
    /// Output file, replaced atomically.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: PathBuf,
    /// Print a JSON summary instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    /// V8 .heapsnapshot JSON.
    Chrome,
}

#[derive(Serialize)]
struct Summary {
    output: String,
    format: &'static str,
    nodes: u64,
    edges: u64,
    unreachable: u64,
}

pub fn run(args: &ExportArgs) -> anyhow::Result<i32> {
    if same_file(&args.file, &args.output) {
        anyhow::bail!(
            "the output {} is the snapshot being exported: choose another name, e.g. heap.heapsnapshot",
            args.output.display()
        );
    }
    let progress = Progress::new();
    progress.phase(&format!("reading {}", args.file.display()));
    let snapshot = super::load(&args.file)?;
    progress.phase(&format!("writing {}", args.output.display()));
    let stats = match args.format {
        ExportFormat::Chrome => heapsight_export::chrome::export_file(&snapshot, &args.output)?,
    };
    drop(progress);
    let summary = Summary {
        output: args.output.display().to_string(),
        format: "chrome",
        nodes: stats.nodes,
        edges: stats.edges,
        unreachable: stats.unreachable,
    };
    if args.json {
        crate::output::print_json(&summary)?;
    } else {
        crate::output::print(&format!(
            "wrote {} ({} nodes, {} edges); open it in Chrome DevTools > Memory > Load profile\n",
            summary.output, summary.nodes, summary.edges
        ))?;
    }
    Ok(crate::exit::OK)
}

/// Whether two paths name one existing file (so the export would replace its own input).
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
