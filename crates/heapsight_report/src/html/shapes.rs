//! A suspect's retainer shapes as one reference graph: the shapes' example paths merged into
//! a tree from their roots (keys and indices abstracted to `[*]`), all ending in one target
//! node, drawn by the same layered layout as `show_backrefs`.

use std::collections::HashMap;

use crate::format::{format_bytes, format_count};
use crate::graph::{NodeKind, RefGraph, RefNodeId};

use super::model::Suspect;

/// Keys and indices name one object; the shape is about all of them.
fn abstract_step(step: &str) -> &str {
    if step.starts_with('[') && step.ends_with(']') {
        "[*]"
    } else {
        step
    }
}

/// Objects and bytes of one shape.
type ShapeSize = (u64, u64);

/// The graph of `suspect`'s shapes, or `None` when it has no path to draw.
pub(crate) fn retainer_graph(suspect: &Suspect) -> Option<RefGraph> {
    let mut paths: Vec<(&[String], Option<ShapeSize>)> = suspect
        .shapes
        .iter()
        .filter(|s| s.example_path.len() >= 2)
        .map(|s| (s.example_path.as_slice(), Some((s.count, s.bytes))))
        .collect();
    if paths.is_empty() && suspect.representative_path.len() >= 2 {
        paths.push((suspect.representative_path.as_slice(), None));
    }
    if paths.is_empty() {
        return None;
    }
    let mut graph = RefGraph::new();
    const TARGET: RefNodeId = RefNodeId(0);
    let mut next_id = 1u64;
    // (parent, abstract step) -> child; roots keyed by (TARGET, root text).
    let mut children: HashMap<(RefNodeId, String), RefNodeId> = HashMap::new();
    let accumulation = suspect.accumulation_point.as_ref().map(|acc| {
        let steps: Vec<&str> = acc
            .path
            .iter()
            .take(acc.path.len().saturating_sub(1))
            .skip(1)
            .map(|s| abstract_step(s))
            .collect();
        (steps, acc)
    });
    for (path, counts) in &paths {
        let last = path.len() - 1;
        let mut current = *children
            .entry((TARGET, path[0].clone()))
            .or_insert_with(|| {
                let id = RefNodeId(next_id);
                next_id += 1;
                graph.add_node(id, path[0].clone(), "", NodeKind::Root);
                id
            });
        for i in 1..last {
            let step = abstract_step(&path[i]);
            if i == last - 1 {
                let mut label = step.trim_start_matches("->").to_owned();
                if let Some((count, bytes)) = counts {
                    label = format!(
                        "{label} ×{} · {}",
                        format_count(*count),
                        format_bytes(*bytes)
                    );
                    label = label.trim_start().to_owned();
                }
                graph.add_edge(current, TARGET, label);
                continue;
            }
            let key = (current, step.to_owned());
            if let Some(&child) = children.get(&key) {
                current = child;
                continue;
            }
            let id = RefNodeId(next_id);
            next_id += 1;
            let reached: Vec<&str> = path[1..=i].iter().map(|s| abstract_step(s)).collect();
            let (title, subtitle) = match &accumulation {
                Some((steps, acc)) if *steps == reached => (
                    acc.type_name.clone(),
                    format!(
                        "accumulation point\nretains {}",
                        format_bytes(acc.retained_bytes)
                    ),
                ),
                _ => match step.strip_prefix("->") {
                    Some(type_name) => (type_name.to_owned(), String::new()),
                    None => ("object".to_owned(), String::new()),
                },
            };
            graph.add_node(id, title, subtitle, NodeKind::Normal);
            let label = if step.starts_with("->") { "" } else { step };
            graph.add_edge(current, id, label);
            children.insert(key, id);
            current = id;
        }
        if last == 1 {
            // The root holds the objects directly (a path of root and target only).
            graph.add_edge(current, TARGET, "");
        }
    }
    graph.nodes.push(crate::graph::RefNode {
        id: TARGET,
        title: suspect.type_name.clone(),
        subtitle: format!(
            "+{} objects\n+{}",
            format_count(suspect.count_growth),
            format_bytes(suspect.bytes_growth)
        ),
        kind: NodeKind::Target,
    });
    Some(graph)
}

#[cfg(test)]
mod tests {
    use super::super::model::{Accumulation, Shape};
    use super::*;

    fn path(steps: &[&str]) -> Vec<String> {
        steps.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn shapes_merge_from_the_root_and_end_in_one_target() {
        let suspect = Suspect {
            type_name: "app.UserSession".into(),
            count_growth: 300,
            bytes_growth: 30_000,
            shapes: vec![
                Shape {
                    count: 200,
                    bytes: 11_200,
                    example_path: path(&["module app", "._SESSIONS", "['u1']", "app.UserSession"]),
                    ..Shape::default()
                },
                Shape {
                    count: 100,
                    bytes: 5_600,
                    example_path: path(&[
                        "module app",
                        "._SESSIONS",
                        "['u2']",
                        ".prev",
                        "app.UserSession",
                    ]),
                    ..Shape::default()
                },
            ],
            accumulation_point: Some(Accumulation {
                type_name: "dict".into(),
                path: path(&["module app", "._SESSIONS", "dict"]),
                retained_bytes: 50_000,
                dominated_targets: 300,
                total_targets: 300,
            }),
            ..Suspect::default()
        };
        let graph = retainer_graph(&suspect).expect("has paths");
        assert_eq!(graph.validate(), Ok(()));
        // root, the dict, the object under [*] of the second shape, the target
        assert_eq!(graph.nodes.len(), 4);
        let dict = graph
            .nodes
            .iter()
            .find(|n| n.title == "dict")
            .expect("acc node");
        assert!(dict.subtitle.contains("accumulation point"));
        let into_target: Vec<&str> = graph
            .edges
            .iter()
            .filter(|e| e.to == RefNodeId(0))
            .map(|e| e.label.as_str())
            .collect();
        assert_eq!(into_target.len(), 2);
        assert!(into_target[0].starts_with("[*] ×200"), "{into_target:?}");
        assert!(into_target[1].starts_with(".prev ×100"), "{into_target:?}");
    }

    #[test]
    fn no_path_no_graph() {
        assert!(retainer_graph(&Suspect::default()).is_none());
    }
}
