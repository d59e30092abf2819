//! Leak suspects on the shared two-snapshot scenario (see `common`).

mod common;

use common::{scenario, BUFFER_GAIN};
use heapsight_analysis::diff::SnapshotDiff;
use heapsight_analysis::suspects::{find_suspects, HeapIndex, Suspect, SuspectOptions};

fn suspects_for(n_sessions: u64) -> Vec<Suspect> {
    let a = scenario(false, n_sessions);
    let b = scenario(true, n_sessions);
    let diff = SnapshotDiff::compute(&a, &b);
    let index = HeapIndex::build(&b).unwrap_or_else(|e| panic!("invalid scenario: {e}"));
    find_suspects(&index, &diff, &SuspectOptions::default())
}

fn find<'a>(suspects: &'a [Suspect], type_name: &str) -> Option<&'a Suspect> {
    suspects.iter().find(|s| s.type_name == type_name)
}

#[test]
fn sessions_and_buffer_lead_noise_is_ignored() {
    let suspects = suspects_for(1000);
    let names: Vec<&str> = suspects.iter().map(|s| s.type_name.as_str()).collect();
    assert_eq!(names, vec!["app.UserSession", "bytearray"], "{suspects:#?}");
    for (i, s) in suspects.iter().enumerate() {
        assert_eq!(s.rank as usize, i + 1);
    }
}

#[test]
fn session_suspect_absorbs_its_containers_and_keys() {
    let suspects = suspects_for(1000);
    let Some(s) = find(&suspects, "app.UserSession") else {
        panic!("no session suspect: {suspects:#?}")
    };
    assert_eq!(s.count_growth, 1000);
    assert_eq!(s.new_survivors, 1000);
    // Own 56 + __dict__ 104 + value 60, key 50, the dict's growth 40 per session.
    assert_eq!(s.bytes_growth, 1000 * (56 + 104 + 60 + 50 + 40));
    let folded: Vec<(&str, u64, &str)> = s
        .folded
        .iter()
        .map(|f| (f.type_name.as_str(), f.count, f.how))
        .collect();
    assert!(folded.contains(&("dict", 1000, "owned")), "{folded:?}");
    assert!(folded.contains(&("str", 1000, "owned")), "{folded:?}");
    assert!(
        folded.contains(&("str", 1000, "held_alongside")),
        "{folded:?}"
    );
    assert!(
        folded.contains(&("dict", 1, "accumulation_point_grew")),
        "{folded:?}"
    );
    assert_eq!(s.shapes.len(), 1);
    assert_eq!(
        s.shapes[0].shape,
        "module app: ._SESSIONS[*] -> app.UserSession"
    );
    assert!((s.shapes[0].share_percent - 100.0).abs() < 1e-9);
    assert_eq!(
        s.representative_path,
        vec!["module app", "._SESSIONS", "['u0']", "app.UserSession"]
    );
    let Some(point) = &s.accumulation_point else {
        panic!("no accumulation point")
    };
    assert_eq!(point.type_name, "dict");
    assert_eq!(point.path.first().map(String::as_str), Some("module app"));
    assert_eq!(point.path.get(1).map(String::as_str), Some("._SESSIONS"));
    assert_eq!(point.dominated_targets, 1000);
    assert!(point.retained_bytes >= 1000 * (56 + 104 + 60 + 50));
    assert_eq!(s.fixes.first().map(|f| f.code), Some("HS001"));
    assert!(
        s.headline.contains("1000 new app.UserSession"),
        "{}",
        s.headline
    );
}

#[test]
fn one_big_buffer_ranks_like_many_small_objects() {
    let suspects = suspects_for(1000);
    let Some(buffer) = find(&suspects, "bytearray") else {
        panic!("no buffer suspect: {suspects:#?}")
    };
    assert_eq!(buffer.count_growth, 0);
    assert_eq!(buffer.grown_in_place, 1);
    assert_eq!(buffer.bytes_growth, BUFFER_GAIN);
    assert!(buffer.score > 0.9, "score {}", buffer.score);
    assert_eq!(
        buffer.representative_path,
        vec!["module app", "._BUFFER", "bytearray"]
    );
}

#[test]
fn churn_and_transient_objects_are_not_suspects() {
    let suspects = suspects_for(10);
    for noise in ["app.Request", "app.Scratch", "list", "frame", "str", "dict"] {
        assert!(
            find(&suspects, noise).is_none(),
            "{noise} reported: {suspects:#?}"
        );
    }
}

#[test]
fn no_growth_no_suspects() {
    let a = scenario(false, 0);
    let diff = SnapshotDiff::compute(&a, &a.clone());
    let index = HeapIndex::build(&a).unwrap_or_else(|e| panic!("{e}"));
    assert!(find_suspects(&index, &diff, &SuspectOptions::default()).is_empty());
}

#[test]
fn long_lived_frame_state_still_counts() {
    // main() holds a cache dict in a local since before A; items added since are a leak
    // even though only the thread's frame reaches the cache.
    let build = |after: bool| {
        use heapsight_snapshot::model::{node_flags, LabelKind, RootKind, SnapshotBuilder, NO_STR};
        let mut b = SnapshotBuilder::new();
        let frame_t = b.type_named("frame");
        let dict_t = b.type_named("dict");
        let item_t = b.type_named("app.Item");
        let frame = b.add_node(0x100, frame_t, 400, node_flags::GC_TRACKED, 1, NO_STR, 0);
        b.root(RootKind::Thread, frame, "MainThread", 1);
        let cache = b.add_node(
            0x200,
            dict_t,
            if after { 4000 } else { 232 },
            node_flags::GC_TRACKED,
            1,
            NO_STR,
            0,
        );
        b.edge_named(frame, cache, LabelKind::Local, "cache");
        if after {
            // A request being served right now: a new frame with a new item, transient.
            let inner = b.add_node(0x300, frame_t, 400, node_flags::GC_TRACKED, 1, NO_STR, 0);
            b.edge_named(frame, inner, LabelKind::Attr, "f_back");
            let in_flight = b.add_node(0x340, item_t, 48, node_flags::GC_TRACKED, 1, NO_STR, 0);
            b.edge_named(inner, in_flight, LabelKind::Local, "item");
            for i in 0..50u64 {
                let item = b.add_node(
                    0x1000 + i * 0x40,
                    item_t,
                    48,
                    node_flags::GC_TRACKED,
                    1,
                    NO_STR,
                    0,
                );
                b.edge_named(cache, item, LabelKind::Key, &format!("k{i}"));
            }
        }
        b.finish()
    };
    let (a, b) = (build(false), build(true));
    let diff = SnapshotDiff::compute(&a, &b);
    let index = HeapIndex::build(&b).unwrap_or_else(|e| panic!("{e}"));
    let suspects = find_suspects(&index, &diff, &SuspectOptions::default());
    let Some(item) = find(&suspects, "app.Item") else {
        panic!("cache growth missed: {suspects:#?}")
    };
    // 50 in the cache; the one in flight is transient.
    assert_eq!(item.new_survivors, 50);
    assert_eq!(item.shapes[0].holder, "thread MainThread: local 'cache'[*]");
}

#[test]
fn new_objects_of_grown_types_have_shapes() {
    let a = scenario(false, 30);
    let b = scenario(true, 30);
    let diff = SnapshotDiff::compute(&a, &b);
    let index = HeapIndex::build(&b).unwrap_or_else(|e| panic!("{e}"));
    let shapes = diff.new_object_shapes(&b, &index.paths, 10);
    let sessions = shapes
        .iter()
        .find(|(name, _)| name == "app.UserSession")
        .map(|(_, report)| report);
    let Some(sessions) = sessions else {
        panic!(
            "no shapes for sessions: {:?}",
            shapes.iter().map(|s| &s.0).collect::<Vec<_>>()
        )
    };
    assert_eq!(sessions.total_count, 30);
    assert_eq!(
        sessions.groups[0].text(),
        "module app: ._SESSIONS[*] -> app.UserSession"
    );
    // The buffer grew in place: no new objects, so no shapes for it.
    assert!(shapes.iter().all(|(name, _)| name != "bytearray"));
}

#[test]
fn one_thread_and_two_threads_find_the_same_suspects() {
    use heapsight_graph::Threads;
    let a = scenario(false, 200);
    let b = scenario(true, 200);
    let diff = SnapshotDiff::compute(&a, &b);
    let by = |threads| {
        let index = HeapIndex::build_with(&b, threads).unwrap_or_else(|e| panic!("{e}"));
        let suspects = find_suspects(&index, &diff, &SuspectOptions::default());
        let shapes = diff.new_object_shapes(&b, &index.paths, 10);
        (suspects, shapes)
    };
    let (one, two) = (by(Threads::One), by(Threads::Two));
    assert!(!one.0.is_empty());
    assert_eq!(one, two);
    // The same as shapes computed on demand over a plain path tree.
    let graph = heapsight_graph::Graph::new(&b).unwrap_or_else(|e| panic!("{e}"));
    let plain = heapsight_graph::shortest_paths_from_roots(&graph);
    assert_eq!(diff.new_object_shapes(&b, &plain, 10), one.1);
}
