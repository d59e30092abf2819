use crate::Host;

#[derive(clap::Args, Debug)]
pub struct CensusArgs {
    /// The running Python process; heapsight's agent is injected unless it has one already.
    pub pid: u32,
    /// How many types to list, the largest in bytes first.
    #[arg(long, default_value_t = 25)]
    pub top: u32,
    /// Print every type as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Count without running the garbage collector first.
    #[arg(long)]
    pub no_gc: bool,
    /// Seconds to wait for the process to run the injected loader.
    #[arg(long, default_value_t = 30.0)]
    pub inject_timeout: f64,
}

pub fn run(args: &CensusArgs, host: &dyn Host) -> anyhow::Result<i32> {
    if !(args.inject_timeout.is_finite() && args.inject_timeout > 0.0) {
        anyhow::bail!("--inject-timeout must be a positive number of seconds");
    }
    let mut forwarded = vec![
        args.pid.to_string(),
        "--top".to_owned(),
        args.top.to_string(),
        "--inject-timeout".to_owned(),
        args.inject_timeout.to_string(),
    ];
    if args.json {
        forwarded.push("--json".to_owned());
    }
    if args.no_gc {
        forwarded.push("--no-gc".to_owned());
    }
    host.run_python_command("census", &forwarded)
}
