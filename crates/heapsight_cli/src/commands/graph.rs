//! `heapsight graph FILE TYPE -o why.svg`: the picture `show_backrefs` draws, from a snapshot
//! file. Both go through `heapsight_export::refs`, so the same objects give the same graph.

use std::path::{Path, PathBuf};

use anyhow::Context;
use heapsight_export::refs::{self, Direction, RefsOptions};
use heapsight_graph::Graph;
use heapsight_report::{GraphFormat, RenderOptions};
use heapsight_snapshot::{NodeIdx, Snapshot};
use serde::Serialize;

use crate::progress::Progress;

#[derive(clap::Args, Debug)]
pub struct GraphArgs {
    /// A snapshot file (.hsnap).
    pub file: PathBuf,
    /// The type whose instances are drawn: `app.UserSession`, or a bare class name.
    #[arg(value_name = "TYPE")]
    pub type_name: String,
    /// Output file; its extension picks the format (.svg, .png, .dot, .gv). Without it the
    /// graph is printed (dot source, or SVG with --format svg).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Output format, overriding the file extension.
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// Steps away from the drawn instances (show_backrefs' max_depth).
    #[arg(long, default_value_t = 3)]
    pub max_depth: usize,
    /// Referrers followed per object; more are left out (show_backrefs' too_many).
    #[arg(long, default_value_t = 10)]
    pub too_many: usize,
    /// Instances of TYPE to start from, spread evenly over all of them.
    #[arg(long, short = 'n', default_value_t = 3)]
    pub max_objects: usize,
    /// Start from these objects instead of a sample (addresses as Python's id(), decimal or
    /// 0x-hex; repeatable).
    #[arg(long, value_name = "ADDRESS", value_parser = parse_address)]
    pub address: Vec<u64>,
    /// Draw what the instances refer to (show_refs) instead of what refers to them.
    #[arg(long)]
    pub refs: bool,
    /// Print a JSON summary (file, format, counts) instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormatArg {
    Dot,
    Svg,
    Png,
}

impl From<FormatArg> for GraphFormat {
    fn from(format: FormatArg) -> Self {
        match format {
            FormatArg::Dot => GraphFormat::Dot,
            FormatArg::Svg => GraphFormat::Svg,
            FormatArg::Png => GraphFormat::Png,
        }
    }
}

fn format_name(format: GraphFormat) -> &'static str {
    match format {
        GraphFormat::Dot => "dot",
        GraphFormat::Svg => "svg",
        GraphFormat::Png => "png",
    }
}

fn parse_address(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.map_err(|_| format!("{text:?} is not an address: give id(obj) in decimal or 0x-hex"))
}

#[derive(Serialize)]
struct Summary {
    output: Option<String>,
    format: &'static str,
    #[serde(rename = "type")]
    type_name: String,
    instances: usize,
    drawn_from: Vec<String>,
    nodes: usize,
    edges: usize,
}

pub fn run(args: &GraphArgs) -> anyhow::Result<i32> {
    // Decide the format before the possibly long read, so a typo fails at once.
    let format = output_format(args)?;
    let progress = Progress::new();
    progress.phase(&format!("reading {}", args.file.display()));
    let snapshot = super::load(&args.file)?;
    let type_name = resolve(&snapshot, &args.type_name)?;
    progress.phase("drawing the graph");
    let graph = Graph::new(&snapshot).context("the snapshot cannot be analysed")?;
    let instances = refs::instances_of(&snapshot, &type_name);
    let starts = if args.address.is_empty() {
        refs::spread_sample(&instances, args.max_objects.max(1))
    } else {
        by_address(&snapshot, &type_name, &instances, &args.address)?
    };
    let options = RefsOptions {
        direction: if args.refs {
            Direction::Forward
        } else {
            Direction::Back
        },
        max_depth: args.max_depth,
        too_many: args.too_many,
    };
    let drawn = refs::reference_graph(&graph, &starts, &options, |_| false);
    let rendered = heapsight_report::render(&drawn, format, &RenderOptions::default()).context(
        "cannot draw the graph (fewer objects with -n or a smaller --max-depth make it smaller)",
    )?;
    drop(progress);
    if let Some(path) = &args.output {
        heapsight_snapshot::write_atomic(path, &rendered.bytes)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    }
    let summary = Summary {
        output: args.output.as_ref().map(|p| p.display().to_string()),
        format: format_name(format),
        type_name,
        instances: instances.len(),
        drawn_from: starts
            .iter()
            .map(|n| format!("{:#x}", snapshot.nodes.address[n.index()]))
            .collect(),
        nodes: drawn.nodes.len(),
        edges: drawn.edges.len(),
    };
    if args.json {
        crate::output::print_json(&summary)?;
    } else if let Some(path) = &args.output {
        crate::output::print(&format!(
            "wrote {} ({} of {} {} instances, {} objects, {} references)\n",
            path.display(),
            starts.len(),
            summary.instances,
            summary.type_name,
            summary.nodes,
            summary.edges
        ))?;
    } else {
        // Without -o the graph itself is the output (PNG was refused in output_format).
        crate::output::print(&String::from_utf8_lossy(&rendered.bytes))?;
    }
    Ok(crate::exit::OK)
}

fn output_format(args: &GraphArgs) -> anyhow::Result<GraphFormat> {
    let format = match (args.format, &args.output) {
        (Some(format), _) => format.into(),
        (None, Some(path)) => GraphFormat::from_path(path).map_err(|_| unknown_extension(path))?,
        (None, None) => GraphFormat::Dot,
    };
    if format == GraphFormat::Png && args.output.is_none() && !args.json {
        anyhow::bail!("a PNG is not printed to the terminal: give a file name with -o graph.png");
    }
    Ok(format)
}

fn unknown_extension(path: &Path) -> anyhow::Error {
    anyhow::anyhow!(
        "cannot tell the graph format from {}: name it .svg, .png, .dot or .gv, or pass --format svg|png|dot",
        path.display()
    )
}

/// The qualified type name `wanted` stands for (exact, or a bare class name naming one type);
/// on a miss the error names the closest types, by substring and by edit distance.
fn resolve(snapshot: &Snapshot, wanted: &str) -> anyhow::Result<String> {
    let mut names: Vec<&str> = snapshot
        .types
        .name
        .iter()
        .filter_map(|s| snapshot.str(*s))
        .collect();
    names.sort_unstable();
    names.dedup();
    if names.contains(&wanted) {
        return Ok(wanted.to_owned());
    }
    let by_class: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| n.rsplit('.').next() == Some(wanted))
        .collect();
    match by_class.as_slice() {
        [one] => return Ok((*one).to_owned()),
        [] => {}
        many => anyhow::bail!(
            "{wanted:?} names several types: {}; give the qualified name",
            many.join(", ")
        ),
    }
    let close = close_type_names(&names, wanted, 5);
    if close.is_empty() {
        anyhow::bail!(
            "no objects of type {wanted:?} in this snapshot; `heapsight top FILE` lists the types it holds"
        )
    }
    anyhow::bail!(
        "no objects of type {wanted:?} in this snapshot; did you mean {}?",
        close.join(", ")
    )
}

/// Type names containing `wanted` or within a small edit distance of it (whole name or class
/// name), closest first: the distance catches typos a substring search misses (`UserSesion`).
fn close_type_names(names: &[&str], wanted: &str, limit: usize) -> Vec<String> {
    let wanted_lower = wanted.to_lowercase();
    let budget = (wanted.chars().count() / 3).max(2);
    let mut scored: Vec<(usize, &str)> = names
        .iter()
        .filter_map(|&name| {
            let lower = name.to_lowercase();
            if lower.contains(&wanted_lower) {
                return Some((0, name));
            }
            let short = lower.rsplit('.').next().unwrap_or(&lower);
            let distance =
                edit_distance(&wanted_lower, &lower).min(edit_distance(&wanted_lower, short));
            (distance <= budget).then_some((distance, name))
        })
        .collect();
    scored.sort_unstable();
    scored
        .into_iter()
        .take(limit)
        .map(|(_, n)| n.to_owned())
        .collect()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// The nodes at `addresses`, each of which must be an instance of `type_name`.
fn by_address(
    snapshot: &Snapshot,
    type_name: &str,
    instances: &[NodeIdx],
    addresses: &[u64],
) -> anyhow::Result<Vec<NodeIdx>> {
    let mut found = Vec::with_capacity(addresses.len());
    for &address in addresses {
        match instances
            .iter()
            .find(|n| snapshot.nodes.address[n.index()] == address)
        {
            Some(&node) => found.push(node),
            None => anyhow::bail!(
                "no {type_name} at address {address:#x} in this snapshot: pass id(obj) of an instance that was alive when the snapshot was taken"
            ),
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_typos() {
        assert_eq!(edit_distance("usersesion", "usersession"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("dict", "dict"), 0);
    }

    #[test]
    fn addresses_parse_in_both_bases() {
        assert_eq!(parse_address("0x10"), Ok(16));
        assert_eq!(parse_address("16"), Ok(16));
        assert!(parse_address("zz").is_err());
    }
}
