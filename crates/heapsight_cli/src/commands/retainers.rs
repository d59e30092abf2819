use std::path::PathBuf;

use heapsight_analysis::evidence::PathEvidence;
use heapsight_analysis::{suggest_fixes, FixSuggestion, HeapIndex};
use heapsight_graph::shapes::{accumulation_point, ShapeIndex};
use heapsight_report::{format_bytes, format_count, Column, Style, Table};
use heapsight_snapshot::{NodeIdx, Snapshot};
use serde::Serialize;

use crate::progress::Progress;

#[derive(clap::Args, Debug)]
pub struct RetainersArgs {
    /// A snapshot file (.hsnap).
    pub file: PathBuf,
    /// The type whose instances are explained: `app.UserSession`, or a bare class name.
    #[arg(value_name = "TYPE")]
    pub type_name: String,
    /// Retainer shapes to show.
    #[arg(long, short = 'n', default_value_t = 10)]
    pub limit: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct Shape {
    shape: String,
    holder: String,
    count: u64,
    bytes: u64,
    share_percent: f64,
    example_path: Vec<String>,
}

#[derive(Serialize)]
struct Accumulation {
    type_name: String,
    path: Vec<String>,
    retained_bytes: u64,
    dominated: u64,
}

#[derive(Serialize)]
struct Retainers {
    #[serde(rename = "type")]
    type_name: String,
    count: u64,
    bytes: u64,
    unreachable: u64,
    headline: Option<String>,
    shapes: Vec<Shape>,
    accumulation_point: Option<Accumulation>,
    fixes: Vec<FixSuggestion>,
}

/// Resolves a bare class name to the one qualified name it stands for.
pub fn resolve_type(snapshot: &Snapshot, wanted: &str) -> anyhow::Result<String> {
    let names: Vec<&str> = snapshot
        .types
        .name
        .iter()
        .filter_map(|s| snapshot.str(*s))
        .collect();
    if names.contains(&wanted) {
        return Ok(wanted.to_owned());
    }
    let mut matching: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| n.rsplit('.').next() == Some(wanted))
        .collect();
    matching.sort_unstable();
    matching.dedup();
    match matching.as_slice() {
        [one] => Ok((*one).to_owned()),
        [] => {
            let lower = wanted.to_lowercase();
            let mut close: Vec<&str> = names
                .into_iter()
                .filter(|n| n.to_lowercase().contains(&lower))
                .collect();
            close.sort_unstable();
            close.truncate(5);
            if close.is_empty() {
                anyhow::bail!("no objects of type {wanted:?} in this snapshot; `heapsight top FILE` lists the types it holds")
            }
            anyhow::bail!(
                "no objects of type {wanted:?} in this snapshot; did you mean {}?",
                close.join(", ")
            )
        }
        many => anyhow::bail!(
            "{wanted:?} names several types: {}; give the qualified name",
            many.join(", ")
        ),
    }
}

pub fn run(args: &RetainersArgs) -> anyhow::Result<i32> {
    let progress = Progress::new();
    progress.phase(&format!("reading {}", args.file.display()));
    let snapshot = super::load(&args.file)?;
    let type_name = resolve_type(&snapshot, &args.type_name)?;
    progress.phase("computing dominators and paths");
    let index = HeapIndex::build(&snapshot)?;
    let targets: Vec<NodeIdx> = (0..snapshot.n_nodes() as u32)
        .map(NodeIdx)
        .filter(|&n| snapshot.type_name(n) == type_name)
        .collect();
    let report = ShapeIndex::new(&snapshot, &index.paths).shapes(&targets);
    let accumulation = accumulation_point(&snapshot, &index.dominators, &index.paths, &targets);
    let fixes = report
        .groups
        .first()
        .and_then(|g| index.paths.path_to(g.example))
        .map(|p| suggest_fixes(&PathEvidence::from_path(&snapshot, &p)))
        .unwrap_or_default();
    drop(progress);
    let shapes = report
        .groups
        .iter()
        .take(args.limit)
        .map(|g| Shape {
            shape: g.text(),
            holder: g.holder.clone(),
            count: g.count,
            bytes: g.bytes,
            share_percent: if report.total_count == 0 {
                0.0
            } else {
                g.count as f64 * 100.0 / report.total_count as f64
            },
            example_path: index
                .paths
                .path_to(g.example)
                .map(|p| heapsight_graph::render_path(&snapshot, &p))
                .unwrap_or_default(),
        })
        .collect();
    let output = Retainers {
        headline: report.headline(&type_name),
        type_name,
        count: report.total_count,
        bytes: report.total_bytes,
        unreachable: report.unreachable_count,
        shapes,
        accumulation_point: accumulation.map(|a| Accumulation {
            type_name: snapshot.type_name(a.node).to_owned(),
            path: a.path,
            retained_bytes: a.retained_bytes,
            dominated: a.dominated_targets,
        }),
        fixes,
    };
    if args.json {
        crate::output::print_json(&output)?;
    } else {
        crate::output::print(&render(&output, &Style::detect()))?;
    }
    Ok(crate::exit::OK)
}

fn render(r: &Retainers, style: &Style) -> String {
    let mut text = format!(
        "{} {} objects, {}\n",
        format_count(r.count),
        r.type_name,
        format_bytes(r.bytes)
    );
    if let Some(headline) = &r.headline {
        text.push_str(&format!("{headline}\n"));
    }
    text.push('\n');
    let mut table = Table::new(vec![
        Column::right("objects"),
        Column::right("share"),
        Column::right("bytes"),
        Column::left("retainer shape"),
    ]);
    for s in &r.shapes {
        let _ = table.push_row([
            format_count(s.count),
            format!("{:.1}%", s.share_percent),
            format_bytes(s.bytes),
            s.shape.clone(),
        ]);
    }
    text.push_str(&table.render(style));
    if let Some(first) = r.shapes.first() {
        text.push_str(&format!("\nexample: {}\n", first.example_path.join(" -> ")));
    }
    if r.unreachable > 0 {
        text.push_str(&format!(
            "{} objects are not reachable from any root (garbage awaiting collection)\n",
            format_count(r.unreachable)
        ));
    }
    if let Some(acc) = &r.accumulation_point {
        text.push_str(&format!(
            "accumulates in: {} {} (retains {}, holds {} of {})\n",
            acc.type_name,
            acc.path.join(" "),
            format_bytes(acc.retained_bytes),
            format_count(acc.dominated),
            format_count(r.count)
        ));
    }
    for fix in r.fixes.iter().take(1) {
        text.push_str(&format!(
            "\nfix [{}] {}\n  {}\n",
            fix.code, fix.title, fix.advice
        ));
        for line in fix.use_instead.lines() {
            text.push_str(&format!("    {line}\n"));
        }
    }
    text
}
