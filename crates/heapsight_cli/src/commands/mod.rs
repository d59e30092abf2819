//! One module per subcommand; `///` docs on the variants are the `--help` text.

mod demo;
mod info;
mod top;

use crate::Host;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Show what a snapshot file holds: process, interpreter, time, sizes, roots.
    Info(info::InfoArgs),
    /// List the types with the most instances or bytes in a snapshot.
    Top(top::TopArgs),
    /// Hunt the leak in the bundled demo web app, start to finish.
    Demo(demo::DemoArgs),
}

pub fn dispatch(command: Command, host: &dyn Host) -> anyhow::Result<i32> {
    match command {
        Command::Info(args) => info::run(&args),
        Command::Top(args) => top::run(&args),
        Command::Demo(args) => demo::run(&args, host),
    }
}

/// Reads a snapshot file; the reader's errors already say what happened and what to do.
fn load(path: &std::path::Path) -> anyhow::Result<heapsight_snapshot::Snapshot> {
    heapsight_snapshot::read_file(path)
        .map_err(|e| anyhow::anyhow!("cannot read snapshot {}: {e}", path.display()))
}
