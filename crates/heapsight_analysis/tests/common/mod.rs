//! The two-snapshot scenario shared by the integration tests: a session leak in a
//! module dict, a buffer growing in place, request churn, and the capturing thread's
//! own objects.

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

pub const BUFFER_GAIN: u64 = 8 << 20;

/// Snapshot A (`after == false`) or B of the scenario with `n_sessions` leaked sessions.
pub fn scenario(after: bool, n_sessions: u64) -> Snapshot {
    let mut h = Heap {
        b: SnapshotBuilder::new(),
    };
    let meta = h.b.metadata_mut();
    meta.pid = 4242;
    meta.time_unix_ms = if after {
        1_700_000_600_000
    } else {
        1_700_000_000_000
    };
    meta.rss_bytes = if after { 200 << 20 } else { 180 << 20 };
    meta.python_version = "3.11.7".into();
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
