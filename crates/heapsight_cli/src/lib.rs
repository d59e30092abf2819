//! The `heapsight` command line. The only crate that prints; one module per subcommand.
//!
//! It ships as a function of the Python extension (`heapsight._heapsight.run_cli`) called
//! from a console-script entry point, so one wheel carries both (see ARCHITECTURE.md).
//! Commands that need a Python interpreter (the demo, later `run`) are parsed here like
//! every other command and handed to the [`Host`] that embeds the CLI.

mod commands;
mod output;
mod progress;

use clap::Parser;
use std::io::Write;

pub use commands::Command;

/// Exit statuses: each means one thing.
pub mod exit {
    pub const OK: i32 = 0;
    /// A leak was found (analysis commands).
    pub const LEAK: i32 = 1;
    /// The verdict is inconclusive.
    pub const INCONCLUSIVE: i32 = 2;
    /// The command could not do its job (bad input, bad file, ...).
    pub const ERROR: i32 = 3;
}

/// What the embedding program provides: commands implemented in Python.
pub trait Host {
    /// Runs the Python-side command `name` with its arguments; returns the exit status.
    fn run_python_command(&self, name: &str, args: &[String]) -> anyhow::Result<i32>;
}

/// A host without Python, for the pure-Rust binary and tests.
pub struct NoPython;

impl Host for NoPython {
    fn run_python_command(&self, name: &str, _args: &[String]) -> anyhow::Result<i32> {
        anyhow::bail!(
            "`heapsight {name}` needs Python: run it through the `heapsight` command installed by `pip install heapsight`"
        )
    }
}

#[derive(Parser, Debug)]
#[command(
    name = "heapsight",
    version,
    about = "Find, explain and fix memory leaks in Python web apps",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Runs the CLI on `argv` (program name first) and returns the process exit status.
pub fn run(argv: Vec<String>, host: &dyn Host) -> i32 {
    let cli = match Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                exit::ERROR
            } else {
                exit::OK
            };
        }
    };
    match commands::dispatch(cli.command, host) {
        Ok(code) => code,
        Err(e) if output::is_broken_pipe(&e) => exit::OK,
        Err(e) => {
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(stderr, "error: {e:#}");
            exit::ERROR
        }
    }
}
