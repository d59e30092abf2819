use std::path::PathBuf;

use clap::{ArgMatches, Args, FromArgMatches};

use crate::Host;

/// The options of `heapsight attach`, as clap sees them (the order of `--drive`, `--body`
/// and `--header` is restored by [`AttachArgs`]).
#[derive(clap::Args, Debug)]
pub struct AttachOptions {
    /// The running Python process (a worker, or with --all-workers a gunicorn/uvicorn master).
    pub pid: u32,
    /// Attach to every child of PID (the workers of a gunicorn or uvicorn master).
    #[arg(long)]
    pub all_workers: bool,
    /// Drive this endpoint, as METHOD:URL on 127.0.0.1 (repeatable); `{i}` in the URL
    /// becomes the request number. Without --drive, real traffic is watched for --duration.
    #[arg(long, value_name = "METHOD:URL")]
    pub drive: Vec<String>,
    /// Request body of the --drive before it.
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
    /// Rounds per endpoint; every process's census is taken after each round.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(8..=200))]
    pub rounds: u32,
    /// Without --drive: how long to watch real traffic, in seconds.
    #[arg(long, default_value_t = 60.0)]
    pub duration: f64,
    /// Without --drive: seconds between two censuses.
    #[arg(long, default_value_t = 5.0)]
    pub interval: f64,
    /// Idle pause before the last census when something grew, in seconds.
    #[arg(long, default_value_t = 6.0)]
    pub settle: f64,
    /// Upper bound of the whole diagnosis in seconds.
    #[arg(long, default_value_t = 900.0)]
    pub timeout: f64,
    /// Seconds to wait for each process to run the injected loader (it runs when the main
    /// thread next executes Python code).
    #[arg(long, default_value_t = 30.0)]
    pub inject_timeout: f64,
    /// Write the result as JSON to this file (`-` for stdout).
    #[arg(long, value_name = "OUT")]
    pub json: Option<PathBuf>,
    /// Record allocation sites of the suspects with tracemalloc, from the moment of attaching.
    #[arg(long)]
    pub trace_alloc: bool,
    /// Remove the agent when done (otherwise it stays for later snapshot/census/detach).
    #[arg(long)]
    pub detach: bool,
}

/// `heapsight attach` arguments: the options plus the drives with their bodies and headers
/// in command-line order.
#[derive(Debug)]
pub struct AttachArgs {
    pub options: AttachOptions,
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

impl FromArgMatches for AttachArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let options = AttachOptions::from_arg_matches(matches)?;
        let mut items = occurrences(matches, "drive", "--drive");
        items.extend(occurrences(matches, "body", "--body"));
        items.extend(occurrences(matches, "header", "--header"));
        items.sort_by_key(|(index, _, _)| *index);
        Ok(AttachArgs {
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

impl Args for AttachArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        AttachOptions::augment_args(cmd)
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        AttachOptions::augment_args_for_update(cmd)
    }
}

/// The argument list of the Python side (`heapsight.attach.commands.attach_main`).
pub fn forwarded(args: &AttachArgs) -> Vec<String> {
    let o = &args.options;
    let mut out = vec!["--pid".to_owned(), o.pid.to_string()];
    if o.all_workers {
        out.push("--all-workers".to_owned());
    }
    if o.detach {
        out.push("--detach".to_owned());
    }
    out.extend(["--inject-timeout".to_owned(), o.inject_timeout.to_string()]);
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
    out.extend(["--settle".to_owned(), o.settle.to_string()]);
    out.extend(["--timeout".to_owned(), o.timeout.to_string()]);
    if let Some(json) = &o.json {
        out.extend(["--json".to_owned(), json.display().to_string()]);
    }
    if o.trace_alloc {
        out.push("--trace-alloc".to_owned());
    }
    out
}

pub fn run(args: &AttachArgs, host: &dyn Host) -> anyhow::Result<i32> {
    let o = &args.options;
    if !(o.inject_timeout.is_finite() && o.inject_timeout > 0.0) {
        anyhow::bail!("--inject-timeout must be a positive number of seconds");
    }
    host.run_python_command("attach", &forwarded(args))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::commands::Command;
    use crate::Cli;

    fn parse(argv: &[&str]) -> Vec<String> {
        let cli = Cli::try_parse_from(argv).expect("valid command line in the test");
        match cli.command {
            Command::Attach(args) => super::forwarded(&args),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn drives_keep_their_bodies_and_the_pid_goes_first() {
        let out = parse(&[
            "heapsight",
            "attach",
            "42",
            "--all-workers",
            "--drive",
            "POST:http://127.0.0.1:1/a",
            "--body",
            "x",
            "--drive",
            "GET:http://127.0.0.1:1/b",
        ]);
        assert_eq!(out[..3], ["--pid", "42", "--all-workers"]);
        let start = out.iter().position(|a| a == "--drive").expect("a drive");
        assert_eq!(
            out[start..start + 6],
            [
                "--drive",
                "POST:http://127.0.0.1:1/a",
                "--body",
                "x",
                "--drive",
                "GET:http://127.0.0.1:1/b"
            ]
        );
    }

    #[test]
    fn the_pid_is_a_number() {
        assert!(Cli::try_parse_from(["heapsight", "attach", "gunicorn"]).is_err());
    }
}
