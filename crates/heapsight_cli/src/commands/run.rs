use std::path::PathBuf;

use clap::{ArgMatches, Args, FromArgMatches};

use super::diagnosis::{drive_items, DiagnosisOptions};
use crate::Host;

/// The options of `heapsight run`, as clap sees them (the order of `--drive`, `--body` and
/// `--header` is restored by [`RunArgs`]).
#[derive(clap::Args, Debug)]
pub struct RunOptions {
    #[command(flatten)]
    pub diagnosis: DiagnosisOptions,
    /// Seconds to wait for the app to accept connections.
    #[arg(long, default_value_t = 60.0)]
    pub startup_timeout: f64,
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

impl FromArgMatches for RunArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        Ok(RunArgs {
            options: RunOptions::from_arg_matches(matches)?,
            drive_items: drive_items(matches),
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
    o.diagnosis.forward(&args.drive_items, &mut out);
    out.extend([
        "--startup-timeout".to_owned(),
        o.startup_timeout.to_string(),
    ]);
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
