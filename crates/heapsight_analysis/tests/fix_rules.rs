//! Every fix rule against the object structure CPython builds for its pattern: the
//! shortest path the graph crate finds to the leaked object must match the rule, and
//! no less specific rule may be reported alongside it.

use heapsight_analysis::evidence::PathEvidence;
use heapsight_analysis::rules::{suggest_fixes, suggest_from, FixRule, Tier, CATALOGUE};
use heapsight_graph::{shortest_paths_from_roots, Graph};
use heapsight_snapshot::model::{
    node_flags, LabelKind, NodeIdx, RootKind, Snapshot, SnapshotBuilder,
};

/// Small DSL over [`SnapshotBuilder`] for CPython-shaped heaps.
struct Heap {
    b: SnapshotBuilder,
}

impl Heap {
    fn new() -> Self {
        Heap {
            b: SnapshotBuilder::new(),
        }
    }

    fn obj(&mut self, type_name: &str) -> NodeIdx {
        self.b.node(type_name, 64)
    }

    fn named(&mut self, type_name: &str, name: &str, flags: u8) -> NodeIdx {
        let t = self.b.type_named(type_name);
        let name = self.b.intern(name);
        let address = 0x2000_0000 + u64::from(t.0) * 0x10_0000 + u64::from(name.0) * 0x40;
        self.b
            .add_node(address, t, 128, node_flags::GC_TRACKED | flags, 2, name, 0)
    }

    /// A module object with its `__dict__`, registered as a module root.
    fn module(&mut self, name: &str) -> (NodeIdx, NodeIdx) {
        let m = self.named("module", name, node_flags::IS_MODULE);
        let d = self.obj("dict");
        self.attr(m, d, "__dict__");
        self.b.root(RootKind::Module, m, name, 0);
        (m, d)
    }

    /// A class object with its namespace dict, stored in `namespace` under `name`.
    fn class(&mut self, namespace: NodeIdx, name: &str) -> (NodeIdx, NodeIdx) {
        let c = self.named("type", name, node_flags::IS_TYPE);
        let d = self.obj("dict");
        self.attr(c, d, "__dict__");
        self.key(namespace, c, name);
        (c, d)
    }

    fn attr(&mut self, from: NodeIdx, to: NodeIdx, name: &str) {
        self.b.edge_named(from, to, LabelKind::Attr, name);
    }
    fn key(&mut self, from: NodeIdx, to: NodeIdx, key: &str) {
        self.b.edge_named(from, to, LabelKind::Key, key);
    }
    fn key_repr(&mut self, from: NodeIdx, to: NodeIdx, repr: &str) {
        self.b.edge_named(from, to, LabelKind::KeyRepr, repr);
    }
    fn index(&mut self, from: NodeIdx, to: NodeIdx, i: u32) {
        self.b.edge(from, to, LabelKind::Index, i);
    }
    fn local(&mut self, from: NodeIdx, to: NodeIdx, name: &str) {
        self.b.edge_named(from, to, LabelKind::Local, name);
    }
    fn unnamed(&mut self, from: NodeIdx, to: NodeIdx) {
        self.b.edge(from, to, LabelKind::None, 0);
    }
    fn set_item(&mut self, from: NodeIdx, to: NodeIdx) {
        self.b.edge(from, to, LabelKind::SetItem, 0);
    }
    fn key_object(&mut self, from: NodeIdx, to: NodeIdx) {
        self.b.edge(from, to, LabelKind::KeyObject, 0);
    }
    fn finish(self) -> Snapshot {
        self.b.finish()
    }
}

/// Registry helper: `module app` with a global container `name` of type `kind`.
fn module_global(h: &mut Heap, module: &str, name: &str, kind: &str) -> NodeIdx {
    let (_, globals) = h.module(module);
    let container = h.obj(kind);
    h.key(globals, container, name);
    container
}

struct Case {
    name: &'static str,
    build: fn() -> (Snapshot, NodeIdx),
    expected: &'static str,
    /// Codes that must not be reported (the generic shapes the path also has).
    not: &'static [&'static str],
}

fn hs001_module_dict() -> (Snapshot, NodeIdx) {
    let mut h = Heap::new();
    let sessions = module_global(&mut h, "app", "_SESSIONS", "dict");
    let s = h.obj("app.UserSession");
    h.key(sessions, s, "u42");
    (h.finish(), s)
}

fn hs002_module_list() -> (Snapshot, NodeIdx) {
    let mut h = Heap::new();
    let history = module_global(&mut h, "app", "_HISTORY", "list");
    let body = h.obj("bytes");
    h.index(history, body, 0);
    (h.finish(), body)
}

fn hs003_module_set() -> (Snapshot, NodeIdx) {
    let mut h = Heap::new();
    let conns = module_global(&mut h, "app", "_CONNECTIONS", "set");
    let c = h.obj("app.Connection");
    h.set_item(conns, c);
    (h.finish(), c)
}

fn hs004_class_listeners() -> (Snapshot, NodeIdx) {
    let mut h = Heap::new();
    let (_, globals) = h.module("app.events");
    let (_, bus_ns) = h.class(globals, "EventBus");
    let listeners = h.obj("list");
    h.key(bus_ns, listeners, "listeners");
    let method = h.obj("method");
    h.index(listeners, method, 0);
    let view = h.obj("app.View");
    h.attr(method, view, "__self__");
    (h.finish(), view)
}

fn hs005_lru_cache_method() -> (Snapshot, NodeIdx) {
    let mut h = Heap::new();
    let (_, globals) = h.module("app.reports");
    let (_, report_ns) = h.class(globals, "Report");
    let wrapper = h.named("functools._lru_cache_wrapper", "Report.totals", 0);
    h.key(report_ns, wrapper, "totals");
    // The C wrapper's tp_traverse visits its cache dict without a name.
    let cache = h.obj("dict");
    h.unnamed(wrapper, cache);
    // C lru_cache keys: a tuple of the arguments, self first.
    let key = h.obj("tuple");
    h.key_object(cache, key);
    let instance = h.obj("app.reports.Report");
    h.index(key, instance, 0);
    let result = h.obj("float");
    h.key_repr(cache, result, "(<app.reports.Report object>, 2024)");
    (h.finish(), instance)
}

fn hs006_function_cache() -> (Snapshot, NodeIdx) {
    let mut h = Heap::new();
    let (_, globals) = h.module("app.render");
    let wrapper = h.named("functools._lru_cache_wrapper", "render", 0);
    h.key(globals, wrapper, "render");
    let cache = h.obj("dict");
    h.unnamed(wrapper, cache);
    let html = h.obj("str");
    h.key_repr(cache, html, "('home', 42)");
    (h.finish(), html)
}

fn hs007_logger_per_request() -> (Snapshot, NodeIdx) {
    let mut h = Heap::new();
    let (_, globals) = h.module("logging");
    let (_, logger_ns) = h.class(globals, "Logger");
    let manager = h.obj("logging.Manager");
    h.key(logger_ns, manager, "manager");
    let manager_dict = h.obj("dict");
    h.attr(manager, manager_dict, "__dict__");
    let logger_dict = h.obj("dict");
    h.key(manager_dict, logger_dict, "loggerDict");
    let logger = h.named("logging.Logger", "request.42", 0);
    h.key(logger_dict, logger, "request.42");
    (h.finish(), logger)
}

fn hs008_stored_exception() -> (Snapshot, NodeIdx) {
    let mut h = Heap::new();
    let errors = module_global(&mut h, "app", "_ERRORS", "list");
    let exc = h.obj("ValueError");
    h.index(errors, exc, 0);
    let tb = h.obj("traceback");
    h.attr(exc, tb, "__traceback__");
    let frame = h.obj("frame");
    h.attr(tb, frame, "tb_frame");
    let payload = h.obj("bytes");
    h.local(frame, payload, "payload");
    (h.finish(), payload)
}

fn hs009_django_queries() -> (Snapshot, NodeIdx) {
    let mut h = Heap::new();
    let (_, globals) = h.module("django.db");
    let handler = h.obj("django.db.utils.ConnectionHandler");
    h.key(globals, handler, "connections");
    // asgiref's Local keeps one connection per thread in a threading.local.
    let local = h.obj("asgiref.local.Local");
    h.attr(handler, local, "_connections");
    let storage = h.obj("_thread._local");
    h.attr(local, storage, "_storage");
    let per_thread = h.obj("dict");
    h.unnamed(storage, per_thread);
    let conn = h.obj("django.db.backends.postgresql.base.DatabaseWrapper");
    h.key(per_thread, conn, "default");
    let log = h.obj("collections.deque");
    h.attr(conn, log, "queries_log");
    let query = h.obj("dict");
    h.index(log, query, 0);
    (h.finish(), query)
}

fn hs010_thread_local() -> (Snapshot, NodeIdx) {
    let mut h = Heap::new();
    let (_, globals) = h.module("app.middleware");
    let state = h.obj("_thread._local");
    h.key(globals, state, "_state");
    let per_thread = h.obj("dict");
    h.unnamed(state, per_thread);
    let request = h.obj("app.Request");
    h.key(per_thread, request, "request");
    (h.finish(), request)
}

fn hs011_asyncio_task_set() -> (Snapshot, NodeIdx) {
    let mut h = Heap::new();
    let tasks = module_global(&mut h, "app", "background_tasks", "set");
    let task = h.obj("_asyncio.Task");
    h.set_item(tasks, task);
    let coro = h.obj("coroutine");
    h.unnamed(task, coro);
    let frame = h.obj("frame");
    h.attr(coro, frame, "cr_frame");
    let request = h.obj("app.Request");
    h.local(frame, request, "request");
    (h.finish(), request)
}

fn hs012_gc_garbage() -> (Snapshot, NodeIdx) {
    let mut h = Heap::new();
    let garbage = module_global(&mut h, "gc", "garbage", "list");
    let node = h.obj("app.Node");
    h.index(garbage, node, 0);
    (h.finish(), node)
}

fn hs013_orm_session() -> (Snapshot, NodeIdx) {
    let mut h = Heap::new();
    let (_, globals) = h.module("app.db");
    let session = h.obj("sqlalchemy.orm.session.Session");
    h.key(globals, session, "session");
    let identity = h.obj("sqlalchemy.orm.identity.WeakInstanceDict");
    h.attr(session, identity, "identity_map");
    let states = h.obj("dict");
    h.attr(identity, states, "_dict");
    let state = h.obj("sqlalchemy.orm.state.InstanceState");
    h.key_repr(states, state, "(<class 'app.User'>, (1,), None)");
    let user = h.obj("app.User");
    h.attr(state, user, "_strong_obj");
    (h.finish(), user)
}

fn hs014_instance_container() -> (Snapshot, NodeIdx) {
    let mut h = Heap::new();
    let (_, globals) = h.module("app");
    let client = h.obj("app.Client");
    h.key(globals, client, "client");
    let client_dict = h.obj("dict");
    h.attr(client, client_dict, "__dict__");
    let responses = h.obj("list");
    h.key(client_dict, responses, "responses");
    let response = h.obj("app.Response");
    h.index(responses, response, 0);
    (h.finish(), response)
}

fn hs015_module_buffer() -> (Snapshot, NodeIdx) {
    let mut h = Heap::new();
    let (_, globals) = h.module("app.audit");
    let buffer = h.obj("bytearray");
    h.key(globals, buffer, "_BUFFER");
    (h.finish(), buffer)
}

fn hs016_signal_receivers() -> (Snapshot, NodeIdx) {
    let mut h = Heap::new();
    let (_, globals) = h.module("django.db.models.signals");
    let signal = h.obj("django.db.models.signals.ModelSignal");
    h.key(globals, signal, "post_save");
    // ModelSignal subclasses django.dispatch.Signal: the path shows the subclass name.
    let signal_dict = h.obj("dict");
    h.attr(signal, signal_dict, "__dict__");
    let receivers = h.obj("list");
    h.key(signal_dict, receivers, "receivers");
    let entry = h.obj("tuple");
    h.index(receivers, entry, 0);
    let closure = h.obj("function");
    h.index(entry, closure, 1);
    let cells = h.obj("tuple");
    h.attr(closure, cells, "__closure__");
    let cell = h.obj("cell");
    h.index(cells, cell, 0);
    let request = h.obj("django.core.handlers.wsgi.WSGIRequest");
    h.attr(cell, request, "cell_contents");
    (h.finish(), request)
}

const CASES: &[Case] = &[
    Case {
        name: "module dict",
        build: hs001_module_dict,
        expected: "HS001",
        not: &["HS014"],
    },
    Case {
        name: "module list",
        build: hs002_module_list,
        expected: "HS002",
        not: &["HS001"],
    },
    Case {
        name: "module set",
        build: hs003_module_set,
        expected: "HS003",
        not: &[],
    },
    Case {
        name: "class listeners",
        build: hs004_class_listeners,
        expected: "HS004",
        not: &["HS001", "HS014"],
    },
    Case {
        name: "lru_cache on method",
        build: hs005_lru_cache_method,
        expected: "HS005",
        not: &["HS001", "HS004", "HS014"],
    },
    Case {
        name: "unbounded function cache",
        build: hs006_function_cache,
        expected: "HS006",
        not: &["HS001", "HS014"],
    },
    Case {
        name: "logger per request",
        build: hs007_logger_per_request,
        expected: "HS007",
        not: &["HS004", "HS014"],
    },
    Case {
        name: "stored exception",
        build: hs008_stored_exception,
        expected: "HS008",
        not: &["HS002"],
    },
    Case {
        name: "django queries",
        build: hs009_django_queries,
        expected: "HS009",
        not: &["HS010", "HS014"],
    },
    Case {
        name: "thread local",
        build: hs010_thread_local,
        expected: "HS010",
        not: &["HS001", "HS014"],
    },
    Case {
        name: "asyncio task set",
        build: hs011_asyncio_task_set,
        expected: "HS011",
        not: &["HS003"],
    },
    Case {
        name: "gc.garbage",
        build: hs012_gc_garbage,
        expected: "HS012",
        not: &["HS002"],
    },
    Case {
        name: "orm session",
        build: hs013_orm_session,
        expected: "HS013",
        not: &["HS014", "HS010"],
    },
    Case {
        name: "instance container",
        build: hs014_instance_container,
        expected: "HS014",
        not: &["HS001"],
    },
    Case {
        name: "signal receivers",
        build: hs016_signal_receivers,
        expected: "HS016",
        not: &["HS014"],
    },
    Case {
        name: "module buffer",
        build: hs015_module_buffer,
        expected: "HS015",
        not: &["HS002"],
    },
];

fn evidence_for(snapshot: &Snapshot, target: NodeIdx) -> PathEvidence {
    let graph = Graph::new(snapshot).unwrap_or_else(|e| panic!("invalid test heap: {e}"));
    let paths = shortest_paths_from_roots(&graph);
    let Some(path) = paths.path_to(target) else {
        panic!("target unreachable in test heap")
    };
    PathEvidence::from_path(snapshot, &path)
}

fn codes_for(snapshot: &Snapshot, target: NodeIdx) -> Vec<&'static str> {
    suggest_fixes(&evidence_for(snapshot, target))
        .iter()
        .map(|s| s.code)
        .collect()
}

#[test]
fn specific_rules_displace_the_generic_shapes_they_also_have() {
    // Without the specific rules, these structures do read as generic shapes: the
    // exclusions above are therefore the tiering at work, not absent matches.
    let shape_only: Vec<FixRule> = CATALOGUE
        .iter()
        .filter(|r| r.tier < Tier::Specific)
        .copied()
        .collect();
    for (build, generic) in [
        (
            hs008_stored_exception as fn() -> (Snapshot, NodeIdx),
            "HS002",
        ),
        (hs011_asyncio_task_set, "HS003"),
        (hs012_gc_garbage, "HS002"),
        (hs007_logger_per_request, "HS014"),
    ] {
        let (snapshot, target) = build();
        let codes: Vec<&str> = suggest_from(&shape_only, &evidence_for(&snapshot, target))
            .iter()
            .map(|s| s.code)
            .collect();
        assert!(
            codes.contains(&generic),
            "expected {generic} among {codes:?}"
        );
    }
}

#[test]
fn each_rule_matches_its_cpython_structure() {
    let mut failures = Vec::new();
    for case in CASES {
        let (snapshot, target) = (case.build)();
        let codes = codes_for(&snapshot, target);
        let first_ok = codes.first() == Some(&case.expected);
        let excluded: Vec<&&str> = case.not.iter().filter(|c| codes.contains(c)).collect();
        if !first_ok || !excluded.is_empty() {
            failures.push(format!(
                "{}: expected {} first, got {codes:?}",
                case.name, case.expected
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_rule_has_a_structure_test() {
    for rule in CATALOGUE {
        assert!(
            CASES.iter().any(|c| c.expected == rule.code),
            "{} has no structure test",
            rule.code
        );
    }
}

#[test]
fn unremarkable_paths_match_nothing() {
    // A frame local of a running thread is not a leak pattern.
    let mut h = Heap::new();
    let frame = h.obj("frame");
    h.b.root(RootKind::Thread, frame, "MainThread", 1);
    let request = h.obj("app.Request");
    h.local(frame, request, "request");
    let snapshot = h.finish();
    assert_eq!(codes_for(&snapshot, request), Vec::<&str>::new());
}

#[test]
fn stored_exception_owning_its_traceback_is_hs008() {
    // The suspect is the exception itself: its path ends before the traceback, which is
    // known from what the suspect owns.
    let mut h = Heap::new();
    let errors = module_global(&mut h, "app", "_ERRORS", "list");
    let exc = h.obj("ValueError");
    h.index(errors, exc, 0);
    let snapshot = h.finish();
    let mut evidence = evidence_for(&snapshot, exc);
    assert_eq!(
        suggest_fixes(&evidence).first().map(|s| s.code),
        Some("HS002")
    );
    evidence.retained_types = vec!["tuple".into(), "traceback".into(), "frame".into()];
    let codes: Vec<&str> = suggest_fixes(&evidence).iter().map(|s| s.code).collect();
    assert_eq!(codes, vec!["HS008"]);
}
