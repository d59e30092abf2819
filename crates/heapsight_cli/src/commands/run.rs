use std::path::PathBuf;

use clap::{ArgMatches, Args, FromArgMatches};

use crate::Host;

/// The options of `heapsight run`, as clap sees them (order of `--drive`, `--body` and
/// `--header` is restored by [`RunArgs`]).
#[derive(clap::Args, Debug)]
pub struct RunOptions {
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
    /// Seconds to wait for the app to accept connections.
    #[arg(long, default_value_t = 60.0)]
    pub startup_timeout: f64,
    /// Idle pause before the last census when something grew: objects released on a timer
    /// (keep-alive timeouts) fall back and are not called a leak. Seconds.
    #[arg(long, default_value_t = 6.0)]
    pub settle: f64,
    /// Upper bound of the whole run in seconds (driving stops, the report is still written).
    #[arg(long, default_value_t = 900.0)]
    pub timeout: f64,
    /// Write the result as JSON to this file (`-` for stdout).
    #[arg(long, value_name = "OUT")]
    pub json: Option<PathBuf>,
    /// Also write a self-contained HTML report (charts per worker and endpoint, retainer
    /// graphs, fixes) to this file.
    #[arg(long, value_name = "OUT.html")]
    pub report: Option<PathBuf>,
    /// Record allocation sites of the suspects with tracemalloc, started at interpreter start.
    #[arg(long)]
    pub trace_alloc: bool,
    /// Keep the run directory (snapshots, census series) here instead of a temporary one.
    #[arg(long)]
    pub keep_dir: Option<PathBuf>,
    /// The command that starts the app, after `--`: `python app.py`, `gunicorn app:app -w 2`.
    #[arg(last = true, required = true, value_name = "APP_ARGV")]
    pub app: Vec<String>,
}

/// `heapsight run` arguments: the options plus the drives with their bodies and headers
/// in command-line order.
#[derive(Debug)]
pub struct RunArgs {
    pub options: RunOptions,
    pub drive_items: Vec<(&'static str, String)>,
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

impl FromArgMatches for RunArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let options = RunOptions::from_arg_matches(matches)?;
        let mut items = occurrences(matches, "drive", "--drive");
        items.extend(occurrences(matches, "body", "--body"));
        items.extend(occurrences(matches, "header", "--header"));
        items.sort_by_key(|(index, _, _)| *index);
        Ok(RunArgs {
            options,
            drive_items: items
                .into_iter()
                .map(|(_, flag, value)| (flag, value))
                .collect(),
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Args for RunArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        RunOptions::augment_args(cmd)
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        RunOptions::augment_args_for_update(cmd)
    }
}

/// The argument list of the Python side (`heapsight.run`), drives in their order.
pub fn forwarded(args: &RunArgs) -> Vec<String> {
    let o = &args.options;
    let mut out = Vec::new();
    for (flag, value) in &args.drive_items {
        out.push((*flag).to_owned());
        out.push(value.clone());
    }
    out.extend(["--requests".to_owned(), o.requests.to_string()]);
    if let Some(warmup) = o.warmup {
        out.extend(["--warmup".to_owned(), warmup.to_string()]);
    }
    out.extend(["--rounds".to_owned(), o.rounds.to_string()]);
    out.extend(["--duration".to_owned(), o.duration.to_string()]);
    out.extend(["--interval".to_owned(), o.interval.to_string()]);
    out.extend([
        "--startup-timeout".to_owned(),
        o.startup_timeout.to_string(),
    ]);
    out.extend(["--settle".to_owned(), o.settle.to_string()]);
    out.extend(["--timeout".to_owned(), o.timeout.to_string()]);
    if let Some(json) = &o.json {
        out.extend(["--json".to_owned(), json.display().to_string()]);
    }
    if let Some(report) = &o.report {
        out.extend(["--report".to_owned(), report.display().to_string()]);
    }
    if o.trace_alloc {
        out.push("--trace-alloc".to_owned());
    }
    if let Some(dir) = &o.keep_dir {
        out.extend(["--keep-dir".to_owned(), dir.display().to_string()]);
    }
    out.push("--".to_owned());
    out.extend(o.app.iter().cloned());
    out
}

pub fn run(args: &RunArgs, host: &dyn Host) -> anyhow::Result<i32> {
    host.run_python_command("run", &forwarded(args))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::commands::Command;
    use crate::Cli;

    fn parse(argv: &[&str]) -> Vec<String> {
        let cli = Cli::try_parse_from(argv).expect("valid command line in the test");
        match cli.command {
            Command::Run(args) => super::forwarded(&args),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn bodies_and_headers_stay_with_the_drive_before_them() {
        let out = parse(&[
            "heapsight",
            "run",
            "--drive",
            "POST:http://127.0.0.1:1/a",
            "--body",
            "x",
            "--header",
            "A: 1",
            "--requests",
            "50",
            "--drive",
            "GET:http://127.0.0.1:1/b",
            "--header",
            "B: 2",
            "--",
            "python",
            "app.py",
            "--port",
            "1",
        ]);
        let drives: Vec<&str> = out.iter().take(10).map(String::as_str).collect();
        assert_eq!(
            drives,
            [
                "--drive",
                "POST:http://127.0.0.1:1/a",
                "--body",
                "x",
                "--header",
                "A: 1",
                "--drive",
                "GET:http://127.0.0.1:1/b",
                "--header",
                "B: 2"
            ]
        );
        let tail: Vec<&str> = out.iter().rev().take(5).rev().map(String::as_str).collect();
        assert_eq!(tail, ["--", "python", "app.py", "--port", "1"]);
        assert!(out.windows(2).any(|w| w[0] == "--requests" && w[1] == "50"));
    }

    #[test]
    fn the_app_command_is_required() {
        assert!(
            Cli::try_parse_from(["heapsight", "run", "--drive", "GET:http://127.0.0.1:1/"])
                .is_err()
        );
    }
}
