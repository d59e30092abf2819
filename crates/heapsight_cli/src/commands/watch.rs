use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::Context;
use heapsight_analysis::{assess, format_bytes, Series, VerdictConfig, VerdictKind, XUnit, YUnit};
use serde::Serialize;

#[derive(clap::Args, Debug)]
pub struct WatchArgs {
    /// The process to watch (any program: its RSS is read from /proc, nothing is injected).
    pub pid: u32,
    /// How long to watch, in seconds.
    #[arg(long, default_value_t = 60.0)]
    pub duration: f64,
    /// Seconds between two RSS readings.
    #[arg(long, default_value_t = 1.0)]
    pub interval: f64,
    /// Print the verdict and the samples as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct WatchResult {
    pid: u32,
    verdict: &'static str,
    rss_first_bytes: u64,
    rss_last_bytes: u64,
    slope_bytes_per_second: f64,
    growth_per_hour_bytes: f64,
    explanation: String,
    process_exited: bool,
    samples: Vec<(f64, u64)>,
}

fn page_size() -> u64 {
    // The kernel's page size is fixed per architecture; 4 KiB on every Linux we run on
    // except some arm64/ppc64 kernels, which /proc/self/smaps' KernelPageSize tells.
    std::fs::read_to_string("/proc/self/smaps")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("KernelPageSize:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(4096, |kb| kb * 1024)
}

/// Resident set size of `pid`; None once the process is gone.
fn rss(pid: u32, page: u64) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * page)
}

pub fn run(args: &WatchArgs) -> anyhow::Result<i32> {
    if !(args.interval.is_finite() && args.interval > 0.0) {
        anyhow::bail!("--interval must be a positive number of seconds");
    }
    if !(args.duration.is_finite() && args.duration >= args.interval) {
        anyhow::bail!("--duration must be at least --interval");
    }
    let page = page_size();
    let first = rss(args.pid, page)
        .with_context(|| format!("no process {} to watch (is the pid right?)", args.pid))?;
    let live = std::io::stderr().is_terminal() && !args.json;
    let started = Instant::now();
    let mut samples = vec![(0.0, first)];
    let mut process_exited = false;
    let interval = Duration::from_secs_f64(args.interval);
    let mut next = started + interval;
    loop {
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
        let elapsed = started.elapsed().as_secs_f64();
        if elapsed > args.duration + args.interval / 2.0 {
            break;
        }
        match rss(args.pid, page) {
            Some(value) => samples.push((elapsed, value)),
            None => {
                process_exited = true;
                break;
            }
        }
        if live {
            let mut err = std::io::stderr().lock();
            let _ = write!(
                err,
                "\r\x1b[2K[{elapsed:5.1}s / {:.0}s] pid {} RSS {}",
                args.duration,
                args.pid,
                format_bytes(samples.last().map_or(0, |s| s.1) as f64)
            );
            let _ = err.flush();
        }
        next += interval;
    }
    if live {
        let _ = write!(std::io::stderr().lock(), "\r\x1b[2K");
    }
    let points: Vec<(f64, f64)> = samples.iter().map(|&(t, v)| (t, v as f64)).collect();
    let series = Series::new("rss", XUnit::Seconds, YUnit::Bytes, &points);
    let verdict =
        assess(&series, &VerdictConfig::default()).context("cannot assess the RSS series")?;
    let name = match verdict.kind {
        VerdictKind::Leak => "leak",
        VerdictKind::NoLeak => "no-leak",
        VerdictKind::Inconclusive => "inconclusive",
    };
    let last = samples.last().map_or(first, |s| s.1);
    let result = WatchResult {
        pid: args.pid,
        verdict: name,
        rss_first_bytes: first,
        rss_last_bytes: last,
        slope_bytes_per_second: verdict.slope_per_unit,
        growth_per_hour_bytes: verdict.slope_per_unit * 3600.0,
        explanation: verdict.explanation.clone(),
        process_exited,
        samples,
    };
    if args.json {
        crate::output::print_json(&result)?;
    } else {
        let exited = if process_exited {
            " (the process exited; verdict on what was seen)"
        } else {
            ""
        };
        crate::output::print(&format!(
            "pid {} · RSS {} -> {} over {:.0} s · {} samples{exited}\nverdict: {name} · slope {}/hour\n{}\n",
            args.pid,
            format_bytes(first as f64),
            format_bytes(last as f64),
            result.samples.last().map_or(0.0, |s| s.0),
            result.samples.len(),
            heapsight_analysis::format_bytes_signed(result.growth_per_hour_bytes),
            verdict.explanation,
        ))?;
    }
    Ok(match verdict.kind {
        VerdictKind::Leak => crate::exit::LEAK,
        VerdictKind::NoLeak => crate::exit::OK,
        VerdictKind::Inconclusive => crate::exit::INCONCLUSIVE,
    })
}
