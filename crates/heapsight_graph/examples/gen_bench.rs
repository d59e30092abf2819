//! Generates a web-app-like heap in memory (default 10M nodes, ~30M edges) and times
//! the graph analyses on it, printing seconds and peak RSS.
//!
//! ```text
//! cargo run --release -p heapsight_graph --example gen_bench -- [nodes] [edges] [--sequential]
//! ```
//!
//! By default the index is built as the analysis builds it (`GraphIndex`, two threads);
//! `--sequential` runs the same parts one after the other and times each. Neither
//! builds the reverse index: only the single-object path queries at the end need it.
//!
//! Shape of the heap: modules (Module roots) whose `__dict__` holds functions, classes,
//! caches (dicts of app instances, some very large), lists and constants; instances hold
//! a `__dict__` of strings, numbers, lists and other instances; thread frames chain
//! through `f_back` with locals; about one reference in three is a random cross-link
//! (to popular interned strings, to nearby objects, or anywhere); a few per mille of
//! objects are External roots, and about 1% of module trees are unreachable garbage.
//!
//! Measured 2026-11-30 00:47-00:51 UTC at 8a1e3d1 on the shared 2-core KVM box (load
//! average 3.0-3.7 throughout: other builds and tests), 10M nodes / 30M edges, three
//! rounds: the pipeline (index + top-20 shapes and accumulation points) took
//! 18.1-25.6s wall / 16.0-18.1s CPU on two threads and 15.2-18.5s wall / 13.3-15.0s CPU
//! with `--sequential`, against 18.1-24.2s wall / 15.3-19.2s CPU at 6aa0996 run
//! alternately (goal < 15 s, not met on this loaded box; see bench/RESULTS.md). Peak
//! RSS 740 MiB above the 613 MiB snapshot after the two-thread index, 817 MiB for the
//! whole run (budget 80 B/node + 12 B/edge = 1106 MiB). Node numbering here is
//! adversarial (40% of cross-links uniformly random), so every pass is memory-latency
//! bound.

use std::time::Instant;

use heapsight_graph::{
    accumulation_point, path_to_single, shortest_paths_and_shapes, DominatorTree, Graph,
    GraphIndex, PathTree, ShapeIndex, ShapeMemo, Threads,
};
use heapsight_snapshot::model::{
    node_flags, LabelKind, NodeIdx, Root, RootKind, Snapshot, StrId, TypeIdx, NO_STR,
};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Kind {
    Module,
    ModuleDict,
    Class,
    ClassDict,
    Function,
    Cache,
    List,
    SmallList,
    Instance,
    InstanceDict,
    Tuple,
    Frame,
    Leaf,
}

const BUILTIN_TYPES: [&str; 12] = [
    "module", "dict", "list", "str", "int", "function", "type", "tuple", "frame", "float", "set",
    "bytes",
];
const T_MODULE: u32 = 0;
const T_DICT: u32 = 1;
const T_LIST: u32 = 2;
const T_STR: u32 = 3;
const T_INT: u32 = 4;
const T_FUNCTION: u32 = 5;
const T_TYPE: u32 = 6;
const T_TUPLE: u32 = 7;
const T_FRAME: u32 = 8;
const T_FLOAT: u32 = 9;
const T_BYTES: u32 = 11;
const APP_TYPES: [&str; 24] = [
    "app.UserSession",
    "app.Request",
    "app.Response",
    "app.Order",
    "app.OrderLine",
    "app.Product",
    "app.Customer",
    "app.Address",
    "app.CacheEntry",
    "app.Event",
    "app.Token",
    "app.Permission",
    "orm.Row",
    "orm.Session",
    "orm.Column",
    "orm.Query",
    "http.Headers",
    "http.Cookie",
    "json.Node",
    "log.Record",
    "tmpl.Template",
    "tmpl.Context",
    "worker.Job",
    "worker.Result",
];

struct Gen {
    rng: Rng,
    n: usize,
    m_target: usize,
    kinds: Vec<Kind>,
    s: Snapshot,
    next_id: usize,
    names: Vec<StrId>,
    module_dicts: Vec<u32>,
    popular: Vec<u32>,
    /// For instance dicts: the type of the owning instance, which picks its attribute names.
    class_of: Vec<u8>,
    str_dunder_dict: StrId,
    str_f_back: StrId,
    n_modules: usize,
}

impl Gen {
    fn intern(s: &mut Snapshot, text: &str) -> StrId {
        s.strings.strings.push(text.to_owned());
        StrId(s.strings.strings.len() as u32 - 1)
    }

    /// Allocates a child node of `kind` (if room is left) and returns its index.
    fn alloc(&mut self, kind: Kind) -> Option<u32> {
        if self.next_id >= self.n {
            return None;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.kinds[id] = kind;
        let rng = &mut self.rng;
        let (t, size) = match kind {
            Kind::Module => (T_MODULE, 72),
            Kind::ModuleDict | Kind::ClassDict => (T_DICT, 1200 + rng.below(4000)),
            Kind::Class => (T_TYPE, 1072),
            Kind::Function => (T_FUNCTION, 160),
            Kind::Cache => (T_DICT, 640 + rng.below(100_000)),
            Kind::List | Kind::SmallList => (T_LIST, 56 + 8 * rng.below(200)),
            Kind::Instance => (
                BUILTIN_TYPES.len() as u32 + rng.below(APP_TYPES.len() as u64) as u32,
                48 + 8 * rng.below(4),
            ),
            Kind::InstanceDict => (T_DICT, 104 + 8 * rng.below(40)),
            Kind::Tuple => (T_TUPLE, 40 + 8 * rng.below(4)),
            Kind::Frame => (T_FRAME, 400),
            Kind::Leaf => match rng.below(10) {
                0..=5 => (T_STR, 49 + rng.below(80)),
                6 | 7 => (T_INT, 28),
                8 => (T_FLOAT, 24),
                _ => (T_BYTES, 33 + rng.below(200)),
            },
        };
        let nodes = &mut self.s.nodes;
        nodes.type_idx[id] = TypeIdx(t);
        nodes.size[id] = size;
        nodes.flags[id] = if kind == Kind::Leaf {
            0
        } else {
            node_flags::GC_TRACKED
        };
        if kind == Kind::Leaf && self.popular.len() < 100_000 {
            self.popular.push(id as u32);
        }
        if kind == Kind::ModuleDict {
            self.module_dicts.push(id as u32);
        }
        Some(id as u32)
    }

    fn edge(&mut self, to: u32, kind: LabelKind, value: u32) {
        let e = &mut self.s.edges;
        e.targets.push(NodeIdx(to));
        e.label_kinds.push(kind);
        e.label_values.push(value);
    }

    fn name(&mut self) -> u32 {
        self.names[self.rng.below(self.names.len() as u64) as usize].0
    }

    fn child(&mut self, kind: Kind, label: LabelKind, value: u32) {
        if let Some(id) = self.alloc(kind) {
            self.edge(id, label, value);
        }
    }

    /// An attribute name of class `class`: each class uses its own dozen names.
    fn attribute_name(&mut self, class: u8) -> u32 {
        let i = class as usize * 12 + self.rng.below(12) as usize;
        self.names[i % self.names.len()].0
    }

    fn random_target(&mut self, near: usize) -> u32 {
        match self.rng.below(10) {
            0..=3 => self.rng.below(self.n as u64) as u32,
            4..=6 if !self.popular.is_empty() => {
                self.popular[self.rng.below(self.popular.len() as u64) as usize]
            }
            _ => near.saturating_sub(self.rng.below(2000) as usize) as u32,
        }
    }

    /// Children and cross-links of node `i`, in that order.
    fn expand(&mut self, i: usize) {
        let kind = self.kinds[i];
        match kind {
            Kind::Module => self.child(Kind::ModuleDict, LabelKind::Attr, self.str_dunder_dict.0),
            Kind::ModuleDict => {
                for _ in 0..self.rng.range(10, 60) {
                    let k = match self.rng.below(100) {
                        0..=39 => Kind::Function,
                        40..=49 => Kind::Class,
                        50..=57 => Kind::Cache,
                        58..=62 => Kind::List,
                        63..=69 => Kind::Instance,
                        _ => Kind::Leaf,
                    };
                    let key = self.name();
                    self.child(k, LabelKind::Key, key);
                }
            }
            Kind::Class => self.child(Kind::ClassDict, LabelKind::Attr, self.str_dunder_dict.0),
            Kind::ClassDict => {
                for _ in 0..self.rng.range(5, 20) {
                    let key = self.name();
                    self.child(Kind::Function, LabelKind::Key, key);
                }
            }
            Kind::Function => {
                if self.rng.chance(300) {
                    let key = self.name();
                    self.child(Kind::Tuple, LabelKind::Attr, key);
                }
                if !self.module_dicts.is_empty() {
                    let g =
                        self.module_dicts[self.rng.below(self.module_dicts.len() as u64) as usize];
                    let key = self.name();
                    self.edge(g, LabelKind::Attr, key);
                }
            }
            Kind::Cache => {
                // Heavy tail: most caches are small, a few hold tens of thousands.
                let len = match self.rng.below(100) {
                    0..=79 => self.rng.range(0, 50),
                    80..=97 => self.rng.range(50, 2000),
                    _ => self.rng.range(2000, 40_000),
                };
                for j in 0..len {
                    if self.rng.chance(500) {
                        let key = self.name();
                        self.child(Kind::Instance, LabelKind::Key, key);
                    } else {
                        let key = self.name();
                        let label = if j % 2 == 0 {
                            LabelKind::KeyRepr
                        } else {
                            LabelKind::Key
                        };
                        self.child(Kind::Instance, label, key);
                    }
                }
            }
            Kind::List => {
                for j in 0..self.rng.range(0, 200) {
                    let k = if self.rng.chance(600) {
                        Kind::Instance
                    } else {
                        Kind::Leaf
                    };
                    self.child(k, LabelKind::Index, j as u32);
                }
            }
            Kind::Instance => {
                let class = (self.s.nodes.type_idx[i].0 as usize - BUILTIN_TYPES.len()) as u8;
                if let Some(d) = self.alloc(Kind::InstanceDict) {
                    self.class_of[d as usize] = class;
                    self.edge(d, LabelKind::Attr, self.str_dunder_dict.0);
                }
            }
            Kind::SmallList => {
                for j in 0..self.rng.range(0, 8) {
                    let k = if self.rng.chance(300) {
                        Kind::Instance
                    } else {
                        Kind::Leaf
                    };
                    self.child(k, LabelKind::Index, j as u32);
                }
            }
            Kind::InstanceDict => {
                // Fewer than one nested instance per instance on average, so each
                // module's object tree stays finite.
                for _ in 0..self.rng.range(2, 8) {
                    let k = match self.rng.below(100) {
                        0..=79 => Kind::Leaf,
                        80..=84 => Kind::SmallList,
                        85..=92 => Kind::Instance,
                        _ => Kind::Tuple,
                    };
                    let key = self.attribute_name(self.class_of[i]);
                    self.child(k, LabelKind::Key, key);
                }
            }
            Kind::Tuple => {
                for j in 0..self.rng.range(1, 4) {
                    self.child(Kind::Leaf, LabelKind::Index, j as u32);
                }
            }
            Kind::Frame => {
                for _ in 0..self.rng.range(3, 10) {
                    let k = match self.rng.below(10) {
                        0..=3 => Kind::Instance,
                        4 => Kind::List,
                        _ => Kind::Leaf,
                    };
                    let key = self.name();
                    self.child(k, LabelKind::Local, key);
                }
                if self.rng.chance(900) {
                    self.child(Kind::Frame, LabelKind::Attr, self.str_f_back.0);
                }
            }
            Kind::Leaf => {}
        }
        if kind != Kind::Leaf && kind != Kind::Module {
            // Cross-links, sized so the total lands near the edge target.
            let remaining_edges = self.m_target.saturating_sub(self.s.edges.targets.len());
            let remaining_nodes = (self.n - i).max(1);
            let per_node = remaining_edges as f64 / remaining_nodes as f64;
            let tree_edges_left = (self.n - self.next_id) as f64 / remaining_nodes as f64;
            // About half the nodes are leaves, which never carry cross-links.
            let mean = ((per_node - tree_edges_left) * 2.0).max(0.0);
            let count = self.rng.below((2.0 * mean) as u64 + 1);
            for _ in 0..count {
                let t = self.random_target(i);
                let (label, value) = match self.rng.below(4) {
                    0 => (LabelKind::Attr, self.name()),
                    1 => (LabelKind::Key, self.name()),
                    2 => (LabelKind::Index, self.rng.below(50) as u32),
                    _ => (LabelKind::None, 0),
                };
                self.edge(t, label, value);
            }
        }
    }
}

fn generate(n: usize, m_target: usize) -> Snapshot {
    let mut s = Snapshot::default();
    for t in BUILTIN_TYPES.iter().chain(APP_TYPES.iter()) {
        let id = Gen::intern(&mut s, t);
        s.types
            .address
            .push(0x7000_0000 + s.types.name.len() as u64 * 0x400);
        s.types.name.push(id);
    }
    let names: Vec<StrId> = (0..4000)
        .map(|i| Gen::intern(&mut s, &format!("name_{i}")))
        .collect();
    let str_dunder_dict = Gen::intern(&mut s, "__dict__");
    let str_f_back = Gen::intern(&mut s, "f_back");
    let nodes = &mut s.nodes;
    nodes.address = (0..n as u64).map(|i| 0x7f00_0000_0000 + i * 0x40).collect();
    nodes.type_idx = vec![TypeIdx(0); n];
    nodes.size = vec![0; n];
    nodes.flags = vec![0; n];
    nodes.refcount = vec![1; n];
    nodes.name = vec![NO_STR; n];
    nodes.length = vec![0; n];
    let reserve = m_target + m_target / 8;
    s.edges.offsets = Vec::with_capacity(n + 1);
    s.edges.targets = Vec::with_capacity(reserve);
    s.edges.label_kinds = Vec::with_capacity(reserve);
    s.edges.label_values = Vec::with_capacity(reserve);
    let mut g = Gen {
        rng: Rng(0x2545_f491_4f6c_dd1d),
        n,
        m_target,
        kinds: vec![Kind::Leaf; n],
        s,
        next_id: 0,
        names,
        module_dicts: Vec::new(),
        popular: Vec::new(),
        class_of: vec![0; n],
        str_dunder_dict,
        str_f_back,
        n_modules: 0,
    };
    for t in 0..8 {
        if let Some(f) = g.alloc(Kind::Frame) {
            let name = Gen::intern(&mut g.s, &format!("Thread-{t}"));
            g.s.roots.push(Root {
                kind: RootKind::Thread,
                node: NodeIdx(f),
                name,
                extra: t,
            });
        }
    }
    g.s.edges.offsets.push(0);
    for i in 0..n {
        if i == g.next_id {
            // Everything so far is expanded: start another module tree.
            if let Some(m) = g.alloc(Kind::Module) {
                g.n_modules += 1;
                let name = Gen::intern(&mut g.s, &format!("app.mod{}", g.n_modules));
                g.s.nodes.name[m as usize] = name;
                g.s.nodes.flags[m as usize] |= node_flags::IS_MODULE;
                // About 1% of module trees are left without a root: garbage.
                if !g.rng.chance(10) {
                    let kind = if g.n_modules == 1 {
                        RootKind::Interpreter
                    } else {
                        RootKind::Module
                    };
                    g.s.roots.push(Root {
                        kind,
                        node: NodeIdx(m),
                        name,
                        extra: 0,
                    });
                }
            }
        }
        g.expand(i);
        g.s.edges.offsets.push(g.s.edges.targets.len() as u64);
    }
    // Objects held from C: a few per mille, anywhere.
    for _ in 0..n / 500 {
        let node = g.rng.below(n as u64) as u32;
        g.s.roots.push(Root {
            kind: RootKind::External,
            node: NodeIdx(node),
            name: NO_STR,
            extra: 1,
        });
    }
    g.s
}

fn status_kib(field: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// CPU time of the calling thread so far, in seconds.
fn thread_cpu_seconds() -> f64 {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let ns: u64 = text
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    ns as f64 / 1e9
}

/// CPU time of the whole process so far (every thread, ended ones included), in
/// seconds: wall time is noisy on a shared machine, and the index runs on two threads.
fn cpu_seconds() -> f64 {
    #[cfg(target_os = "linux")]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; the call only writes into it.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
        if rc == 0 {
            return ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9;
        }
    }
    thread_cpu_seconds()
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Wall and CPU seconds since a start point.
struct Clock {
    wall: Instant,
    cpu: f64,
    thread_cpu: f64,
}

impl Clock {
    fn start() -> Clock {
        Clock {
            wall: Instant::now(),
            cpu: cpu_seconds(),
            thread_cpu: thread_cpu_seconds(),
        }
    }
    fn lap(&self) -> String {
        format!(
            "{:.2}s wall, {:.2}s cpu",
            self.wall.elapsed().as_secs_f64(),
            cpu_seconds() - self.cpu
        )
    }
    /// CPU seconds of the calling thread, and of every other thread, since the start.
    fn split(&self) -> (f64, f64) {
        let own = thread_cpu_seconds() - self.thread_cpu;
        (own, (cpu_seconds() - self.cpu - own).max(0.0))
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// What the pipeline computed, however it was run.
struct Computed<'s> {
    graph: Graph<'s>,
    dominators: DominatorTree,
    paths: PathTree,
    /// The shapes, when they came separately from the paths.
    memo: Option<ShapeMemo>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let sequential = args.iter().any(|a| a == "--sequential");
    args.retain(|a| a != "--sequential");
    let n: usize = args.first().map_or(Ok(10_000_000), |a| a.parse())?;
    let m: usize = args.get(1).map_or(Ok(30_000_000), |a| a.parse())?;

    let t = Instant::now();
    let snapshot = generate(n, m);
    let n_edges = snapshot.edges.len();
    println!(
        "generated {} nodes, {} edges, {} roots in {:.2}s",
        snapshot.n_nodes(),
        n_edges,
        snapshot.roots.len(),
        t.elapsed().as_secs_f64()
    );
    // Reset the peak so it measures the analyses on top of the snapshot.
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let base_kib = status_kib("VmRSS:");
    println!(
        "RSS with the snapshot: {:.0} MiB (peak reset: {reset})",
        mib(base_kib)
    );
    println!("load average before: {}", load_average());

    let total = Clock::start();
    let (computed, peak_after_index, index_label) = if sequential {
        // The parts of `GraphIndex::build_with(.., Threads::One)`, timed one by one.
        let t = Clock::start();
        let graph = Graph::lazy(&snapshot)?;
        println!(
            "graph view (validate + roots; no reverse index): {}",
            t.lap()
        );
        let t = Clock::start();
        let dominators = DominatorTree::compute(&graph);
        println!("dominators + retained sizes: {}", t.lap());
        let peak = status_kib("VmHWM:");
        let t = Clock::start();
        let (paths, memo) = shortest_paths_and_shapes(&graph);
        println!(
            "shortest paths from roots (BFS) + shapes of all nodes: {}",
            t.lap()
        );
        let computed = Computed {
            graph,
            dominators,
            paths,
            memo: Some(memo),
        };
        (computed, peak, "after dominators")
    } else {
        // What `heapsight report` and `run` do (`HeapIndex::build`).
        let t = Clock::start();
        let index = GraphIndex::build_with(&snapshot, Threads::Two)?;
        let (own, helper) = t.split();
        println!(
            "graph index on 2 threads (validate + roots, then dominators + retained sizes \
             beside BFS paths + shapes of all nodes): {} \
             (calling thread {own:.2}s cpu, helper threads {helper:.2}s cpu)",
            t.lap()
        );
        let peak = status_kib("VmHWM:");
        let GraphIndex {
            graph,
            dominators,
            paths,
        } = index;
        let computed = Computed {
            graph,
            dominators,
            paths,
            memo: None,
        };
        (computed, peak, "after the index")
    };
    let Computed {
        graph,
        dominators,
        paths,
        memo,
    } = computed;

    let t = Clock::start();
    let n_types = snapshot.types.len();
    let mut per_type: Vec<Vec<NodeIdx>> = vec![Vec::new(); n_types];
    for (i, ty) in snapshot.nodes.type_idx.iter().enumerate() {
        per_type[ty.index()].push(NodeIdx(i as u32));
    }
    let mut ranked: Vec<usize> = (0..n_types).collect();
    ranked.sort_by_key(|&t| std::cmp::Reverse(per_type[t].len()));
    let mut top_lines = Vec::new();
    let mut shape_index = match memo {
        Some(memo) => ShapeIndex::with_memo(&snapshot, &paths, memo),
        None => ShapeIndex::new(&snapshot, &paths),
    };
    let (mut shapes_s, mut points_s) = (0.0f64, 0.0f64);
    for &ty in ranked.iter().take(20) {
        let targets = &per_type[ty];
        if targets.is_empty() {
            continue;
        }
        let t_shape = cpu_seconds();
        let report = shape_index.top_shapes(targets, 50);
        shapes_s += cpu_seconds() - t_shape;
        let t_point = cpu_seconds();
        let point = accumulation_point(&snapshot, &dominators, &paths, targets);
        points_s += cpu_seconds() - t_point;
        let name = snapshot.str(snapshot.types.name[ty]).unwrap_or("?");
        let headline = report.headline(name).unwrap_or_default();
        let accumulation = point.map_or("none".to_owned(), |p| {
            format!(
                "{} ({} of {}, {} B retained)",
                p.path.join(" "),
                p.dominated_targets,
                p.total_targets,
                p.retained_bytes
            )
        });
        top_lines.push(format!(
            "  {name}: {} objects, {} shapes; {headline}; accumulates at {accumulation}",
            targets.len(),
            report.groups.len() as u64 + report.omitted_groups
        ));
    }
    println!(
        "shapes + accumulation points of the top 20 types: {} (cpu: shapes {shapes_s:.2}s, accumulation points {points_s:.2}s)",
        t.lap()
    );
    println!(
        "pipeline (index + dominators + retained sizes + paths + shapes of the top 20 types, {}): {}",
        if sequential { "1 thread" } else { "2 threads" },
        total.lap()
    );
    println!("load average after: {}", load_average());
    for line in top_lines.iter().take(6) {
        println!("{line}");
    }

    let top = dominators.top_retained(3);
    for (node, retained) in &top {
        let path = paths
            .path_to(*node)
            .map(|p| heapsight_graph::render_path(&snapshot, &p));
        println!(
            "  top retainer {} B: {:?}",
            retained,
            path.unwrap_or_default()
        );
    }

    // 100 single-object path queries on app instances (what a drill-down does).
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let instances = &per_type[BUILTIN_TYPES.len()];
    let t = Clock::start();
    let mut found = 0;
    let mut total_len = 0;
    for _ in 0..if instances.is_empty() { 0 } else { 100 } {
        let target = instances[rng.below(instances.len() as u64) as usize];
        if let Some(p) = path_to_single(&graph, target) {
            found += 1;
            total_len += p.len();
        }
    }
    println!(
        "100 x path_to_single (the first builds the reverse index): {} ({found} found, mean length {:.1})",
        t.lap(),
        total_len as f64 / found.max(1) as f64
    );

    let peak = status_kib("VmHWM:");
    let per_node = (peak.saturating_sub(base_kib) * 1024) as f64 / n as f64;
    println!(
        "total analysis {}; peak RSS {:.0} MiB ({:.0} MiB above the snapshot; {index_label} {:.0} MiB above); \
         {:.1} B/node above the snapshot with {:.1} edges/node",
        total.lap(),
        mib(peak),
        mib(peak.saturating_sub(base_kib)),
        mib(peak_after_index.saturating_sub(base_kib)),
        per_node,
        n_edges as f64 / n as f64
    );
    println!(
        "budget 80 B/node + 12 B/edge = {:.0} MiB",
        (80.0 * n as f64 + 12.0 * n_edges as f64) / (1024.0 * 1024.0)
    );
    Ok(())
}
