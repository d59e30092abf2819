//! Leak suspects on a two-snapshot scenario with the usual noise: a session leak in a
//! module dict, a buffer growing in place, request churn, and the capturing thread's
//! own objects.

use heapsight_analysis::diff::SnapshotDiff;
use heapsight_analysis::suspects::{find_suspects, HeapIndex, Suspect, SuspectOptions};
use heapsight_snapshot::model::{
    node_flags, LabelKind, NodeIdx, RootKind, Snapshot, SnapshotBuilder, NO_STR,
};

struct Heap {
    b: SnapshotBuilder,
}

impl Heap {
    fn obj(&mut self, address: u64, type_name: &str, size: u64) -> NodeIdx {
        let t = self.b.type_named(type_name);
        self.b
            .add_node(address, t, size, node_flags::GC_TRACKED, 1, NO_STR, 0)
    }
    fn module(&mut self, address: u64, name: &str) -> NodeIdx {
        let t = self.b.type_named("module");
        let n = self.b.intern(name);
        let m = self.b.add_node(
            address,
            t,
            72,
            node_flags::IS_MODULE | node_flags::GC_TRACKED,
            5,
            n,
            0,
        );
        self.b.root(RootKind::Module, m, name, 0);
        m
    }
    fn edge(&mut self, from: NodeIdx, to: NodeIdx, kind: LabelKind, label: &str) {
        self.b.edge_named(from, to, kind, label);
    }
    fn index(&mut self, from: NodeIdx, to: NodeIdx, i: u32) {
        self.b.edge(from, to, LabelKind::Index, i);
    }
}

const BUFFER_GAIN: u64 = 8 << 20;

/// Snapshot A (`after == false`) or B of the scenario with `n_sessions` leaked sessions.
fn scenario(after: bool, n_sessions: u64) -> Snapshot {
    let mut h = Heap {
        b: SnapshotBuilder::new(),
    };
    let module = h.module(0x1000, "app");
    let globals = h.obj(0x1040, "dict", 1200);
    h.edge(module, globals, LabelKind::Attr, "__dict__");
    let sessions_size = if after { 232 + 40 * n_sessions } else { 232 };
    let sessions = h.obj(0x1080, "dict", sessions_size);
    h.edge(globals, sessions, LabelKind::Key, "_SESSIONS");
    let buffer = h.obj(
        0x10c0,
        "bytearray",
        if after { 1000 + BUFFER_GAIN } else { 1000 },
    );
    h.edge(globals, buffer, LabelKind::Key, "_BUFFER");
    let inflight = h.obj(0x1100, "list", 120);
    h.edge(globals, inflight, LabelKind::Key, "_INFLIGHT");
    // Requests in flight: five in each snapshot, all different objects (churn).
    let request_base = if after { 0x9000 } else { 0x8000 };
    for i in 0..5 {
        let r = h.obj(request_base + i * 0x40, "app.Request", 48);
        h.index(inflight, r, i as u32);
    }
    let frame = h.obj(0x1200, "frame", 400);
    h.b.root(RootKind::Thread, frame, "MainThread", 1);
    let old_scratch = h.obj(0x1240, "app.Scratch", 32);
    h.edge(frame, old_scratch, LabelKind::Local, "old");
    if after {
        // The capturing thread's own new objects.
        let inner = h.obj(0x5000, "frame", 400);
        h.edge(frame, inner, LabelKind::None, "");
        let scratch = h.obj(0x5040, "app.Scratch", 32);
        h.edge(inner, scratch, LabelKind::Local, "scratch");
        let tmp = h.obj(0x5080, "list", 10_000_000);
        h.edge(inner, tmp, LabelKind::Local, "tmp");
        for i in 0..n_sessions {
            let base = 0x10_0000 + i * 0x200;
            let session = h.obj(base, "app.UserSession", 56);
            let attrs = h.obj(base + 0x40, "dict", 104);
            h.edge(session, attrs, LabelKind::Attr, "__dict__");
            let user = h.obj(base + 0x80, "str", 60);
            h.edge(attrs, user, LabelKind::Key, "user");
            let key = h.obj(base + 0xc0, "str", 50);
            h.b.edge(sessions, key, LabelKind::KeyObject, 0);
            h.edge(sessions, session, LabelKind::Key, &format!("u{i}"));
        }
    }
    h.b.finish()
}

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
