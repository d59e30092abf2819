use std::path::PathBuf;

use crate::Host;

#[derive(clap::Args, Debug)]
pub struct SnapshotArgs {
    /// The running Python process; heapsight's agent is injected unless it has one already.
    pub pid: u32,
    /// Where to write the snapshot (`.hsnap`), atomically.
    #[arg(short, long, value_name = "FILE.hsnap")]
    pub output: PathBuf,
    /// Walk the heap in the process itself, holding the GIL. By default a forked copy is
    /// walked where that is safe, so the process keeps serving.
    #[arg(long)]
    pub in_process: bool,
    /// Seconds to wait for the process to run the injected loader.
    #[arg(long, default_value_t = 30.0)]
    pub inject_timeout: f64,
}

pub fn run(args: &SnapshotArgs, host: &dyn Host) -> anyhow::Result<i32> {
    if !(args.inject_timeout.is_finite() && args.inject_timeout > 0.0) {
        anyhow::bail!("--inject-timeout must be a positive number of seconds");
    }
    let mut forwarded = vec![
        args.pid.to_string(),
        "--output".to_owned(),
        args.output.display().to_string(),
        "--inject-timeout".to_owned(),
        args.inject_timeout.to_string(),
    ];
    if args.in_process {
        forwarded.push("--in-process".to_owned());
    }
    host.run_python_command("snapshot", &forwarded)
}
