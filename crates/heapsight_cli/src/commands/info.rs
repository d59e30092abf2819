use anyhow::Context;
use heapsight_snapshot::{RootKind, Snapshot};
use serde::Serialize;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct InfoArgs {
    /// A snapshot file (.hsnap).
    pub file: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct Info<'a> {
    file: String,
    file_bytes: u64,
    pid: u32,
    python_version: &'a str,
    executable: &'a str,
    argv: &'a [String],
    captured_at_unix_ms: u64,
    rss_bytes: u64,
    heapsight_version: &'a str,
    include_values: bool,
    walk_ms: u64,
    n_nodes: usize,
    n_edges: usize,
    n_types: usize,
    n_gc_tracked: u64,
    n_frozen: u64,
    total_bytes: u64,
    roots: RootCounts,
}

#[derive(Serialize, Default)]
struct RootCounts {
    module: usize,
    thread: usize,
    external: usize,
    interpreter: usize,
}

pub fn run(args: &InfoArgs) -> anyhow::Result<i32> {
    let snapshot = super::load(&args.file)?;
    let file_bytes = std::fs::metadata(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?
        .len();
    let info = summarize(&args.file, file_bytes, &snapshot);
    if args.json {
        crate::output::print_json(&info)?;
    } else {
        crate::output::print(&render(&info))?;
    }
    Ok(crate::exit::OK)
}

fn summarize<'a>(file: &std::path::Path, file_bytes: u64, snapshot: &'a Snapshot) -> Info<'a> {
    let meta = &snapshot.metadata;
    let mut roots = RootCounts::default();
    for root in &snapshot.roots {
        match root.kind {
            RootKind::Module => roots.module += 1,
            RootKind::Thread => roots.thread += 1,
            RootKind::External => roots.external += 1,
            RootKind::Interpreter => roots.interpreter += 1,
        }
    }
    Info {
        file: file.display().to_string(),
        file_bytes,
        pid: meta.pid,
        python_version: &meta.python_version,
        executable: &meta.executable,
        argv: &meta.argv,
        captured_at_unix_ms: meta.time_unix_ms,
        rss_bytes: meta.rss_bytes,
        heapsight_version: &meta.heapsight_version,
        include_values: meta.include_values,
        walk_ms: meta.walk_ms,
        n_nodes: snapshot.n_nodes(),
        n_edges: snapshot.edges.len(),
        n_types: snapshot.types.len(),
        n_gc_tracked: meta.n_gc_tracked,
        n_frozen: meta.n_frozen,
        total_bytes: snapshot.nodes.size.iter().sum(),
        roots,
    }
}

fn render(info: &Info<'_>) -> String {
    use heapsight_report::{format_bytes as fmt_bytes, format_count as fmt_count};
    let python = info.python_version.split_whitespace().next().unwrap_or("?");
    let per_node = if info.n_nodes == 0 {
        0.0
    } else {
        info.file_bytes as f64 / info.n_nodes as f64
    };
    let lines = [
        format!("snapshot   {}", info.file),
        format!(
            "process    pid {} · Python {python} · {}",
            info.pid, info.executable
        ),
        format!("argv       {}", info.argv.join(" ")),
        format!(
            "captured   {} (walk {} ms)",
            format_time(info.captured_at_unix_ms),
            info.walk_ms
        ),
        format!("rss        {}", fmt_bytes(info.rss_bytes)),
        format!(
            "objects    {} nodes ({} gc-tracked, {} frozen) · {} edges · {} types",
            fmt_count(info.n_nodes as u64),
            fmt_count(info.n_gc_tracked),
            fmt_count(info.n_frozen),
            fmt_count(info.n_edges as u64),
            fmt_count(info.n_types as u64)
        ),
        format!("heap       {} in objects", fmt_bytes(info.total_bytes)),
        format!(
            "roots      {} modules · {} threads · {} native refs · {} interpreter",
            info.roots.module, info.roots.thread, info.roots.external, info.roots.interpreter
        ),
        format!(
            "values     {}",
            if info.include_values {
                "short string values included (include_values=True)"
            } else {
                "not stored (lengths only)"
            }
        ),
        format!(
            "file       {} ({per_node:.1} bytes per node) · heapsight {}",
            fmt_bytes(info.file_bytes),
            info.heapsight_version
        ),
    ];
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

/// UTC time as `YYYY-MM-DD HH:MM:SS UTC`, without a date crate.
fn format_time(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil-from-days algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::format_time;

    #[test]
    fn formats_utc_times() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_time(1_795_965_296_000), "2026-11-29 15:14:56 UTC");
        assert_eq!(format_time(951_782_400_000), "2000-02-29 00:00:00 UTC");
    }
}
