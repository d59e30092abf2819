use heapsight_snapshot::Snapshot;
use serde::Serialize;
use std::path::PathBuf;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortKey {
    Count,
    Bytes,
}

#[derive(clap::Args, Debug)]
pub struct TopArgs {
    /// A snapshot file (.hsnap).
    pub file: PathBuf,
    /// Rank types by instance count or by bytes.
    #[arg(long, value_enum, default_value_t = SortKey::Count)]
    pub by: SortKey,
    /// How many types to show (0 for all).
    #[arg(long, short = 'n', default_value_t = 25)]
    pub limit: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize, Debug, PartialEq, Eq)]
pub struct TypeTotal {
    #[serde(rename = "type")]
    pub type_name: String,
    pub count: u64,
    pub bytes: u64,
}

pub fn run(args: &TopArgs) -> anyhow::Result<i32> {
    let snapshot = super::load(&args.file)?;
    let mut totals = type_totals(&snapshot);
    let n_types = totals.len();
    rank(&mut totals, args.by);
    if args.limit > 0 {
        totals.truncate(args.limit);
    }
    if args.json {
        crate::output::print_json(&totals)?;
    } else {
        crate::output::print(&render(&totals, n_types, &snapshot))?;
    }
    Ok(crate::exit::OK)
}

/// Count and bytes of every type in the snapshot.
pub fn type_totals(snapshot: &Snapshot) -> Vec<TypeTotal> {
    let mut per_type = vec![(0u64, 0u64); snapshot.types.len()];
    for (type_idx, size) in snapshot.nodes.type_idx.iter().zip(&snapshot.nodes.size) {
        if let Some(slot) = per_type.get_mut(type_idx.index()) {
            slot.0 += 1;
            slot.1 += size;
        }
    }
    per_type
        .into_iter()
        .enumerate()
        .filter(|(_, (count, _))| *count > 0)
        .map(|(idx, (count, bytes))| TypeTotal {
            type_name: snapshot
                .types
                .name
                .get(idx)
                .and_then(|s| snapshot.str(*s))
                .unwrap_or("?")
                .to_owned(),
            count,
            bytes,
        })
        .collect()
}

/// Largest first; ties broken by name so output is stable.
pub fn rank(totals: &mut [TypeTotal], by: SortKey) {
    totals.sort_by(|a, b| {
        let key = |t: &TypeTotal| match by {
            SortKey::Count => (t.count, t.bytes),
            SortKey::Bytes => (t.bytes, t.count),
        };
        key(b)
            .cmp(&key(a))
            .then_with(|| a.type_name.cmp(&b.type_name))
    });
}

fn render(totals: &[TypeTotal], n_types: usize, snapshot: &Snapshot) -> String {
    use heapsight_report::{format_bytes, format_count, Column, Style, Table};
    let mut table = Table::new(vec![
        Column::left("type"),
        Column::right("count"),
        Column::right("bytes"),
    ]);
    for t in totals {
        // Three cells for three columns: push_row cannot fail here.
        let _ = table.push_row([
            t.type_name.clone(),
            format_count(t.count),
            format_bytes(t.bytes),
        ]);
    }
    let mut text = table.render(&Style::detect());
    text.push_str(&format!(
        "{} of {} types · {} objects\n",
        totals.len(),
        n_types,
        format_count(snapshot.n_nodes() as u64)
    ));
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use heapsight_snapshot::SnapshotBuilder;

    #[test]
    fn totals_and_ranking() {
        let mut b = SnapshotBuilder::new();
        for _ in 0..3 {
            b.node("dict", 64);
        }
        b.node("bytearray", 4096);
        let snapshot = b.finish();
        let mut totals = type_totals(&snapshot);
        rank(&mut totals, SortKey::Count);
        assert_eq!(totals[0].type_name, "dict");
        assert_eq!((totals[0].count, totals[0].bytes), (3, 192));
        rank(&mut totals, SortKey::Bytes);
        assert_eq!(totals[0].type_name, "bytearray");
    }
}
