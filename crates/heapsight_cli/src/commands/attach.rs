use clap::{ArgMatches, Args, FromArgMatches};

use super::diagnosis::{drive_items, DiagnosisOptions};
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
    #[command(flatten)]
    pub diagnosis: DiagnosisOptions,
    /// Seconds to wait for each process to run the injected loader (it runs when the main
    /// thread next executes Python code).
    #[arg(long, default_value_t = 30.0)]
    pub inject_timeout: f64,
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

impl FromArgMatches for AttachArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        Ok(AttachArgs {
            options: AttachOptions::from_arg_matches(matches)?,
            drive_items: drive_items(matches),
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
    o.diagnosis.forward(&args.drive_items, &mut out);
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
