use crate::Host;

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Requests sent to each endpoint of the demo app.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u32).range(10..=100_000))]
    pub requests: u32,
    /// Where to keep the demo's snapshots (default: a temporary directory).
    #[arg(long)]
    pub keep_dir: Option<std::path::PathBuf>,
    /// Also write the hunt as a self-contained HTML report (charts, retainer graphs).
    #[arg(long, value_name = "OUT.html")]
    pub report: Option<std::path::PathBuf>,
}

pub fn run(args: &DemoArgs, host: &dyn Host) -> anyhow::Result<i32> {
    let mut forwarded = vec!["--requests".to_owned(), args.requests.to_string()];
    if let Some(dir) = &args.keep_dir {
        forwarded.push("--keep-dir".to_owned());
        forwarded.push(dir.display().to_string());
    }
    if let Some(path) = &args.report {
        forwarded.push("--report".to_owned());
        forwarded.push(path.display().to_string());
    }
    host.run_python_command("demo", &forwarded)
}
