use std::path::PathBuf;

use heapsight_analysis::HeapIndex;
use heapsight_report::{format_bytes, Column, Style, Table};
use heapsight_snapshot::NO_STR;
use serde::Serialize;

use crate::progress::Progress;

#[derive(clap::Args, Debug)]
pub struct DominatorsArgs {
    /// A snapshot file (.hsnap).
    pub file: PathBuf,
    /// Objects to show.
    #[arg(long, short = 'n', default_value_t = 20)]
    pub limit: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct Row {
    #[serde(rename = "type")]
    type_name: String,
    name: Option<String>,
    retained_bytes: u64,
    shallow_bytes: u64,
    share_percent: f64,
    path: Vec<String>,
}

pub fn run(args: &DominatorsArgs) -> anyhow::Result<i32> {
    let progress = Progress::new();
    progress.phase(&format!("reading {}", args.file.display()));
    let snapshot = super::load(&args.file)?;
    progress.phase("computing the dominator tree");
    let index = HeapIndex::build(&snapshot)?;
    let total = index.dominators.total_size().max(1);
    let rows: Vec<Row> = index
        .dominators
        .top_retained(args.limit)
        .into_iter()
        .map(|(node, retained)| {
            let name_id = snapshot.nodes.name[node.index()];
            Row {
                type_name: snapshot.type_name(node).to_owned(),
                name: (name_id != NO_STR).then(|| snapshot.str(name_id).unwrap_or("?").to_owned()),
                retained_bytes: retained,
                shallow_bytes: snapshot.nodes.size[node.index()],
                share_percent: retained as f64 * 100.0 / total as f64,
                path: index
                    .paths
                    .path_to(node)
                    .map(|p| heapsight_graph::render_path(&snapshot, &p))
                    .unwrap_or_default(),
            }
        })
        .collect();
    drop(progress);
    if args.json {
        crate::output::print_json(&rows)?;
        return Ok(crate::exit::OK);
    }
    let mut table = Table::new(vec![
        Column::right("retained"),
        Column::right("share"),
        Column::right("own"),
        Column::left("object"),
        Column::left("path from a root"),
    ]);
    for r in &rows {
        let _ = table.push_row([
            format_bytes(r.retained_bytes),
            format!("{:.1}%", r.share_percent),
            format_bytes(r.shallow_bytes),
            match &r.name {
                Some(name) => format!("{} {name}", r.type_name),
                None => r.type_name.clone(),
            },
            r.path.join(" "),
        ]);
    }
    let mut text = table.render(&Style::detect());
    text.push_str(&format!("heap total {}\n", format_bytes(total)));
    crate::output::print(&text)?;
    Ok(crate::exit::OK)
}
