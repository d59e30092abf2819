//! The `heapsight` command line. The only crate that prints; one module per subcommand.
//!
//! It ships as a function of the Python extension (`heapsight._heapsight.run_cli`) called
//! from a console-script entry point, so one wheel carries both (see ARCHITECTURE.md).

use clap::Parser;

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

#[derive(Parser, Debug)]
#[command(name = "heapsight", version, about = "Find, explain and fix memory leaks in Python web apps")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Subcommand, Debug)]
pub enum Command {}

/// Runs the CLI on `argv` (program name first) and returns the process exit status.
pub fn run(argv: Vec<String>) -> i32 {
    match Cli::try_parse_from(argv) {
        Ok(_cli) => exit::OK,
        Err(e) => {
            let _ = e.print();
            if e.use_stderr() {
                exit::ERROR
            } else {
                exit::OK
            }
        }
    }
}
