//! One module per subcommand; `///` docs on the variants are the `--help` text.

mod attach;
mod census;
mod demo;
mod detach;
mod diagnosis;
mod diff;
mod dominators;
mod export;
mod graph;
mod info;
mod report;
mod retainers;
mod run;
mod snapshot;
mod top;
mod watch;

use crate::Host;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Show what a snapshot file holds: process, interpreter, time, sizes, roots.
    Info(info::InfoArgs),
    /// List the types with the most instances or bytes in a snapshot.
    Top(top::TopArgs),
    /// Compare two snapshots of one process: per-type growth and how new objects are held.
    Diff(diff::DiffArgs),
    /// Explain why the instances of a type are alive: retainer shapes, accumulation point, fix.
    Retainers(retainers::RetainersArgs),
    /// The objects that keep the most memory alive (dominator tree, retained sizes).
    Dominators(dominators::DominatorsArgs),
    /// Draw what keeps a type's instances alive (or what they hold) as SVG, PNG or dot.
    Graph(graph::GraphArgs),
    /// Write a snapshot in another tool's format (Chrome DevTools .heapsnapshot).
    Export(export::ExportArgs),
    /// Full diagnosis from two snapshots: suspects, paths, accumulation points, fixes.
    Report(report::ReportArgs),
    /// Hunt the leak in the bundled demo web app, start to finish.
    Demo(demo::DemoArgs),
    /// Start a web app under heapsight, drive or watch its traffic, and find which endpoint
    /// leaks what, held by what, and how to fix it.
    Run(run::RunArgs),
    /// RSS trend of any running process from /proc (no injection): verdict and slope.
    Watch(watch::WatchArgs),
    /// Load heapsight's agent into a running Python process (gdb, or sys.remote_exec on
    /// 3.14+) and diagnose it like `run`: which endpoint leaks what, held by what.
    Attach(attach::AttachArgs),
    /// Snapshot the heap of a running Python process into a .hsnap file.
    Snapshot(snapshot::SnapshotArgs),
    /// Count the objects per type in a running Python process.
    Census(census::CensusArgs),
    /// Stop the heapsight agent in a process and remove its socket; the process keeps running.
    Detach(detach::DetachArgs),
}

pub fn dispatch(command: Command, host: &dyn Host) -> anyhow::Result<i32> {
    match command {
        Command::Info(args) => info::run(&args),
        Command::Top(args) => top::run(&args),
        Command::Diff(args) => diff::run(&args),
        Command::Retainers(args) => retainers::run(&args),
        Command::Dominators(args) => dominators::run(&args),
        Command::Graph(args) => graph::run(&args),
        Command::Export(args) => export::run(&args),
        Command::Report(args) => report::run(&args),
        Command::Demo(args) => demo::run(&args, host),
        Command::Run(args) => run::run(&args, host),
        Command::Watch(args) => watch::run(&args),
        Command::Attach(args) => attach::run(&args, host),
        Command::Snapshot(args) => snapshot::run(&args, host),
        Command::Census(args) => census::run(&args, host),
        Command::Detach(args) => detach::run(&args, host),
    }
}

/// Reads a snapshot file; the reader's errors already say what happened and what to do.
fn load(path: &std::path::Path) -> anyhow::Result<heapsight_snapshot::Snapshot> {
    heapsight_snapshot::read_file(path)
        .map_err(|e| anyhow::anyhow!("cannot read snapshot {}: {e}", path.display()))
}

/// Reads the two snapshots of a comparison, showing progress.
fn load_pair(
    progress: &crate::progress::Progress,
    before: &std::path::Path,
    after: &std::path::Path,
) -> anyhow::Result<(heapsight_snapshot::Snapshot, heapsight_snapshot::Snapshot)> {
    progress.phase(&format!("reading {}", before.display()));
    let before = load(before)?;
    progress.phase(&format!("reading {}", after.display()));
    let after = load(after)?;
    Ok((before, after))
}
