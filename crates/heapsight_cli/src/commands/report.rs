use std::path::PathBuf;

use anyhow::Context;
use heapsight_analysis::{build_report, Report, ReportOptions, VerdictKind};
use heapsight_report::{
    format_bytes, format_bytes_delta, format_count, format_count_delta, Column, Style, Table,
};

use crate::progress::Progress;

#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// The earlier snapshot.
    pub before: PathBuf,
    /// The later snapshot of the same process.
    pub after: PathBuf,
    /// Write the report to this file instead of stdout: `.json` for JSON, `.html` for the
    /// HTML page (as --report), anything else for text.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Print JSON (the schema is in docs/report-schema.md).
    #[arg(long)]
    pub json: bool,
    /// Suspects to report at most.
    #[arg(long, default_value_t = 10)]
    pub suspects: usize,
    /// Also write a self-contained HTML report (charts, retainer graphs, sortable tables)
    /// to this file; it opens offline in any browser.
    #[arg(long, value_name = "OUT.html")]
    pub report: Option<PathBuf>,
}

pub fn run(args: &ReportArgs) -> anyhow::Result<i32> {
    let progress = Progress::new();
    let (before, after) = super::load_pair(&progress, &args.before, &args.after)?;
    progress.phase("analysing (dominators, paths, suspects)");
    let mut options = ReportOptions::default();
    options.suspects.max_suspects = args.suspects;
    let report =
        build_report(&before, &after, &[], &options).context("cannot analyse the snapshots")?;
    drop(progress);
    if let Some(path) = &args.report {
        write_html(&report, path)?;
    }
    if let Some(path) = args.output.as_ref().filter(|p| is_html(p)) {
        write_html(&report, path)?;
        return Ok(exit_status(&report));
    }
    let as_json = args.json
        || args.output.as_ref().is_some_and(|p| {
            p.extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        });
    let text = if as_json {
        let mut json = serde_json::to_string_pretty(&report)?;
        json.push('\n');
        json
    } else {
        let style = if args.output.is_some() {
            Style::plain(100)
        } else {
            Style::detect()
        };
        render_text(&report, &style)
    };
    match &args.output {
        Some(path) => {
            heapsight_snapshot::write_atomic(path, text.as_bytes())
                .with_context(|| format!("cannot write the report to {}", path.display()))?;
            eprintln!("report written to {}", path.display());
        }
        None => crate::output::print(&text)?,
    }
    Ok(exit_status(&report))
}

fn is_html(path: &std::path::Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("html") || e.eq_ignore_ascii_case("htm"))
}

/// Writes the HTML page of `report` (atomically) and says where.
fn write_html(report: &Report, path: &std::path::Path) -> anyhow::Result<()> {
    let value = serde_json::to_value(report).context("cannot serialise the report")?;
    let title = format!("heapsight report · pid {}", report.after.pid);
    let html = heapsight_report::to_html(&heapsight_report::HtmlInput {
        title: Some(&title),
        report: Some(&value),
        run: None,
    });
    heapsight_snapshot::write_atomic(path, html.as_bytes()).with_context(|| {
        format!(
            "cannot write the HTML report to {} (is the directory there and writable?)",
            path.display()
        )
    })?;
    eprintln!("HTML report written to {}", path.display());
    Ok(())
}

/// 1 when a verdict says leak or, without series, when suspects not held by a bounded
/// container were found.
pub fn exit_status(report: &Report) -> i32 {
    if report.verdicts.iter().any(|v| v.kind == VerdictKind::Leak) {
        return crate::exit::LEAK;
    }
    if !report.verdicts.is_empty() {
        return if report
            .verdicts
            .iter()
            .all(|v| v.kind == VerdictKind::NoLeak)
        {
            crate::exit::OK
        } else {
            crate::exit::INCONCLUSIVE
        };
    }
    // Growth held by a full-size-bounded cache stops by itself: not a leak.
    if report.suspects.iter().all(|s| s.bounded_by.is_some()) {
        crate::exit::OK
    } else {
        crate::exit::LEAK
    }
}

/// The report for a terminal: summary, verdicts, suspects with their evidence and fixes,
/// then the type and dominator tables.
pub fn render_text(report: &Report, style: &Style) -> String {
    let mut out = String::new();
    let change = &report.change;
    let elapsed = change
        .elapsed_seconds
        .map(|s| format!(" · {s:.1} s apart"))
        .unwrap_or_default();
    out.push_str(&format!(
        "heapsight report · pid {} · Python {}{elapsed}\n",
        report.after.pid,
        report
            .after
            .python_version
            .split_whitespace()
            .next()
            .unwrap_or("?")
    ));
    let rss = change
        .rss_bytes_delta
        .map(|d| format!(" · RSS {}", format_bytes_delta(d)))
        .unwrap_or_default();
    let per_hour = change
        .heap_growth_per_hour
        .map(|h| format!(" · {}/hour", format_bytes_delta(h as i64)))
        .unwrap_or_default();
    out.push_str(&format!(
        "heap {} ({} -> {} objects; {} new, {} gone){rss}{per_hour}\n",
        format_bytes_delta(change.heap_bytes_delta),
        format_count(report.before.n_objects),
        format_count(report.after.n_objects),
        format_count(change.n_new),
        format_count(change.n_gone),
    ));
    if change.different_processes {
        out.push_str(
            "warning: the snapshots come from different processes; every object counts as new\n",
        );
    }
    for verdict in &report.verdicts {
        out.push_str(&format!(
            "\nverdict ({}): {}\n",
            verdict.label, verdict.explanation
        ));
    }
    out.push('\n');
    if report.suspects.is_empty() {
        out.push_str("No leak suspects: nothing new survives in a way that grows.\n");
    }
    for suspect in &report.suspects {
        out.push_str(&style.paint(
            &format!(
                "#{} {}  {} objects  {}\n",
                suspect.rank,
                suspect.type_name,
                format_count_delta(suspect.count_growth as i64),
                format_bytes_delta(suspect.bytes_growth as i64)
            ),
            heapsight_report::Paint::Bold,
        ));
        out.push_str(&format!("   {}\n", suspect.headline));
        for shape in &suspect.shapes {
            out.push_str(&format!(
                "   {:>5.1}%  {} objects  {}\n",
                shape.share_percent,
                format_count(shape.count),
                shape.holder
            ));
        }
        if !suspect.representative_path.is_empty() {
            out.push_str(&format!(
                "   path: {}\n",
                suspect.representative_path.join(" -> ")
            ));
        }
        if let Some(acc) = &suspect.accumulation_point {
            out.push_str(&format!(
                "   accumulates in: {} {} (retains {}, holds {} of {})\n",
                acc.type_name,
                acc.path.join(" "),
                format_bytes(acc.retained_bytes),
                format_count(acc.dominated_targets),
                format_count(acc.total_targets)
            ));
        }
        if let Some(fix) = suspect.fixes.first() {
            out.push_str(&format!(
                "   fix [{}] {}: {}\n",
                fix.code, fix.title, fix.advice
            ));
            for line in fix.use_instead.lines() {
                out.push_str(&format!("       {line}\n"));
            }
        }
        out.push('\n');
    }
    out.push_str(&growth_table(report, style));
    out.push_str(&dominator_table(report, style));
    out
}

fn growth_table(report: &Report, style: &Style) -> String {
    let grown: Vec<_> = report
        .type_growth
        .iter()
        .filter(|t| t.count_delta > 0 || t.bytes_delta > 0)
        .take(15)
        .collect();
    if grown.is_empty() {
        return String::new();
    }
    let mut table = Table::new(vec![
        Column::left("type that grew"),
        Column::right("count"),
        Column::right("bytes"),
        Column::right("new alive"),
        Column::right("now"),
    ]);
    for t in grown {
        let _ = table.push_row([
            t.type_name.clone(),
            format_count_delta(t.count_delta),
            format_bytes_delta(t.bytes_delta),
            format_count(t.new_count),
            format_count(t.count_after),
        ]);
    }
    let mut text = table.render(style);
    text.push('\n');
    text
}

fn dominator_table(report: &Report, style: &Style) -> String {
    if report.dominators.is_empty() {
        return String::new();
    }
    let mut table = Table::new(vec![
        Column::left("largest retainer"),
        Column::right("retained"),
        Column::right("share"),
        Column::left("path"),
    ]);
    for d in &report.dominators {
        let _ = table.push_row([
            match &d.name {
                Some(name) => format!("{} {name}", d.type_name),
                None => d.type_name.clone(),
            },
            format_bytes(d.retained_bytes),
            format!("{:.1}%", d.share_percent),
            d.path.join(" "),
        ]);
    }
    table.render(style)
}
