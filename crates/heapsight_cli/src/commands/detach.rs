use crate::Host;

#[derive(clap::Args, Debug)]
pub struct DetachArgs {
    /// The process whose heapsight agent should stop (its socket is removed).
    pub pid: u32,
    /// Detach from every child of PID (the workers of a gunicorn or uvicorn master).
    #[arg(long)]
    pub all_workers: bool,
}

pub fn run(args: &DetachArgs, host: &dyn Host) -> anyhow::Result<i32> {
    let mut forwarded = vec![args.pid.to_string()];
    if args.all_workers {
        forwarded.push("--all-workers".to_owned());
    }
    host.run_python_command("detach", &forwarded)
}
