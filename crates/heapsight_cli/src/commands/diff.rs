use std::path::PathBuf;

use heapsight_analysis::{SnapshotDiff, TypeGrowth};
use heapsight_graph::shapes::ShapeIndex;
use heapsight_graph::{shortest_paths_from_roots, Graph};
use heapsight_report::{
    format_bytes_delta, format_count, format_count_delta, Column, Style, Table,
};
use serde::Serialize;

use crate::progress::Progress;

#[derive(clap::Args, Debug)]
pub struct DiffArgs {
    /// The earlier snapshot.
    pub before: PathBuf,
    /// The later snapshot of the same process.
    pub after: PathBuf,
    /// Types to show (0 for all that changed).
    #[arg(long, short = 'n', default_value_t = 20)]
    pub limit: usize,
    /// Retainer shapes shown for the new objects of each of the top types.
    #[arg(long, default_value_t = 3)]
    pub shapes: usize,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct ShapeRow {
    shape: String,
    count: u64,
    bytes: u64,
}

#[derive(Serialize)]
struct TypeRow<'a> {
    #[serde(flatten)]
    growth: &'a TypeGrowth,
    /// How the new objects of this type are held, most common first.
    new_object_shapes: Vec<ShapeRow>,
}

#[derive(Serialize)]
struct DiffOutput<'a> {
    n_new: u64,
    new_bytes: u64,
    n_gone: u64,
    types: Vec<TypeRow<'a>>,
}

/// Types with shapes computed for their new objects (the rest get none: shapes cost a
/// path per object).
const TYPES_WITH_SHAPES: usize = 5;

pub fn run(args: &DiffArgs) -> anyhow::Result<i32> {
    let progress = Progress::new();
    let (before, after) = super::load_pair(&progress, &args.before, &args.after)?;
    progress.phase("comparing");
    let diff = SnapshotDiff::compute(&before, &after);
    progress.phase("finding paths from roots");
    let graph = Graph::new(&after)?;
    let paths = shortest_paths_from_roots(&graph);
    let mut shapes = ShapeIndex::new(&after, &paths);
    let mut changed: Vec<&TypeGrowth> = diff.grown().chain(diff.shrunk()).collect();
    if args.limit > 0 {
        changed.truncate(args.limit);
    }
    let rows: Vec<TypeRow> = changed
        .into_iter()
        .enumerate()
        .map(|(i, growth)| {
            let new_object_shapes = if i < TYPES_WITH_SHAPES && growth.new_count > 0 {
                let targets: Vec<_> = diff.new_nodes_of_type(&after, &growth.type_name).collect();
                shapes
                    .shapes(&targets)
                    .groups
                    .into_iter()
                    .take(args.shapes)
                    .map(|g| ShapeRow {
                        shape: g.text(),
                        count: g.count,
                        bytes: g.bytes,
                    })
                    .collect()
            } else {
                Vec::new()
            };
            TypeRow {
                growth,
                new_object_shapes,
            }
        })
        .collect();
    drop(progress);
    let output = DiffOutput {
        n_new: diff.n_new,
        new_bytes: diff.new_bytes,
        n_gone: diff.n_gone,
        types: rows,
    };
    if args.json {
        crate::output::print_json(&output)?;
    } else {
        crate::output::print(&render(&output, &Style::detect()))?;
    }
    Ok(crate::exit::OK)
}

fn render(output: &DiffOutput<'_>, style: &Style) -> String {
    let mut table = Table::new(vec![
        Column::left("type"),
        Column::right("count"),
        Column::right("bytes"),
        Column::right("new alive"),
        Column::right("now"),
    ]);
    for row in &output.types {
        let g = row.growth;
        let _ = table.push_row([
            g.type_name.clone(),
            format_count_delta(g.count_delta),
            format_bytes_delta(g.bytes_delta),
            format_count(g.new_count),
            format_count(g.count_after),
        ]);
    }
    let mut text = format!(
        "{} new objects alive ({}), {} gone\n\n",
        format_count(output.n_new),
        format_bytes_delta(output.new_bytes as i64),
        format_count(output.n_gone)
    );
    text.push_str(&table.render(style));
    for row in output
        .types
        .iter()
        .filter(|r| !r.new_object_shapes.is_empty())
    {
        text.push_str(&format!("\nnew {} held by:\n", row.growth.type_name));
        for shape in &row.new_object_shapes {
            text.push_str(&format!(
                "  {:>8}  {}\n",
                format_count(shape.count),
                shape.shape
            ));
        }
    }
    text
}
