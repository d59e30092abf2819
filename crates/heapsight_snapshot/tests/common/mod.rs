//! Test data shared by the integration tests: a tiny deterministic PRNG, a small snapshot
//! that uses every feature of the model, and a synthetic "web app" heap of any size.
#![allow(dead_code)]

use heapsight_snapshot::{
    node_flags, Bound, Edges, LabelKind, Metadata, NodeIdx, Nodes, Root, RootKind, Snapshot,
    SnapshotBuilder, StrId, StringTable, TypeIdx, Types, NO_STR,
};

/// xorshift64*: deterministic, no dependency, good enough to pick offsets and sizes.
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        XorShift(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..bound` (bound > 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }

    /// In `0..bound`, small values far more likely (roughly Zipf): a few classes, keys and
    /// constants account for most objects, as in real heaps.
    pub fn skewed(&mut self, bound: u64) -> u64 {
        let u = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        ((bound as f64 * u * u * u) as u64).min(bound - 1)
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A small snapshot with every label kind, every root kind, every flag, values opted in,
/// non-ASCII strings and extreme numbers.
pub fn every_feature_snapshot() -> Snapshot {
    let mut b = SnapshotBuilder::new();
    {
        let m = b.metadata_mut();
        m.pid = u32::MAX;
        m.python_version = "3.12.1 (main, Jan  1 2024) [GCC 12.2.0]".into();
        m.executable = "/usr/bin/python3".into();
        m.argv = vec![
            "gunicorn".into(),
            "app:wsgi".into(),
            "--name=café ☕".into(),
            String::new(),
        ];
        m.time_unix_ms = 1_700_000_000_123;
        m.rss_bytes = u64::MAX;
        m.n_gc_tracked = 12;
        m.n_frozen = 3;
        m.include_values = true;
        m.heapsight_version = "0.1.0".into();
        m.walk_ms = 42;
    }
    let module_type = b.add_type(0x7f00_0000_1000, "module");
    let dict_type = b.type_named("dict");
    let list_type = b.type_named("list");
    let str_type = b.type_named("str");
    let user_type = b.add_type(0xffff_ffff_ffff_fff0, "app.UserSession");
    let all_flags = node_flags::GC_TRACKED
        | node_flags::FROZEN
        | node_flags::IMMORTAL
        | node_flags::SIZE_ESTIMATED
        | node_flags::IS_TYPE
        | node_flags::IS_MODULE;
    let module_name = b.intern("app.sessions");
    let module = b.add_node(
        0x7f00_1000_0000,
        module_type,
        72,
        node_flags::IS_MODULE | node_flags::GC_TRACKED,
        7,
        module_name,
        0,
    );
    let globals = b.add_node(
        0x7f00_1000_0100,
        dict_type,
        1184,
        node_flags::GC_TRACKED,
        1,
        NO_STR,
        30,
    );
    let session = b.add_node(
        0x7f00_1000_0200,
        user_type,
        56,
        node_flags::GC_TRACKED | node_flags::SIZE_ESTIMATED,
        u32::MAX,
        NO_STR,
        0,
    );
    let items = b.add_node(
        0x7f00_1000_0300,
        list_type,
        88,
        node_flags::GC_TRACKED | node_flags::FROZEN,
        0,
        NO_STR,
        4,
    );
    let value = b.intern("secret token ✓");
    let token = b.add_node(
        0x10,
        str_type,
        70,
        node_flags::HAS_VALUE | node_flags::IMMORTAL,
        u32::MAX,
        value,
        14,
    );
    let big = b.add_node(
        u64::MAX - 15,
        user_type,
        u64::MAX,
        all_flags,
        u32::MAX - 1,
        NO_STR,
        u64::MAX,
    );
    let zero = b.add_node(0, str_type, 0, 0, 0, NO_STR, 0);
    b.edge_named(module, globals, LabelKind::Attr, "__dict__");
    b.edge_named(globals, session, LabelKind::Key, "current_session");
    b.edge_named(globals, items, LabelKind::KeyRepr, "(1, 'a')");
    b.edge(globals, token, LabelKind::KeyObject, 0);
    b.edge(items, session, LabelKind::Index, 0);
    b.edge(items, big, LabelKind::Index, u32::MAX);
    b.edge(items, items, LabelKind::Index, 2);
    b.edge(items, zero, LabelKind::None, 0);
    b.edge_named(session, token, LabelKind::Local, "request");
    b.edge(big, zero, LabelKind::SetItem, 0);
    b.edge(big, module, LabelKind::None, 0);
    b.edge(zero, big, LabelKind::None, 0);
    b.root(RootKind::Module, module, "app.sessions", 0);
    b.root(RootKind::Thread, session, "MainThread", 140_000_000_000);
    b.root(RootKind::External, big, "", u64::MAX);
    b.root(RootKind::Interpreter, zero, "sys", 1);
    let mut snap = b.finish();
    snap.roots.push(Root {
        kind: RootKind::External,
        node: items,
        name: NO_STR,
        extra: 3,
    });
    // One bounded and one explicitly unbounded container, the largest capacity included.
    snap.bounds = vec![
        Bound {
            node: items,
            capacity: Some(128),
        },
        Bound {
            node: big,
            capacity: None,
        },
    ];
    snap.bounds.sort_by_key(|b| b.node);
    if snap.bounds[0].node == snap.bounds[1].node {
        snap.bounds.pop();
    }
    snap
}

/// A heap shaped like a Python web app's, about `n_nodes` objects and 2 references per
/// object: gc-tracked containers in allocation order (instances with attributes, dicts,
/// lists, tuples, functions, code), then the untracked leaves they reference (str, int,
/// float) sorted by address, as a capture that de-duplicates leaves by address emits them.
/// Addresses follow pymalloc: size-class pools of 16 KiB carved from 256 KiB arenas.
pub fn synthetic_web_heap(n_nodes: usize, seed: u64) -> Snapshot {
    let mut rng = XorShift::new(seed);
    let mut strings = StringTable::default();
    let mut intern = |s: String| {
        strings.strings.push(s);
        StrId(strings.strings.len() as u32 - 1)
    };

    // Types: builtins first, then user classes, each with its own attribute names.
    let builtin_names = [
        "type", "module", "dict", "list", "tuple", "function", "code", "str", "int", "float",
        "cell", "set",
    ];
    let mut types = Types::default();
    for (i, name) in builtin_names.iter().enumerate() {
        types.address.push(0x5555_5570_0000 + i as u64 * 0x1a0);
        types.name.push(intern((*name).to_string()));
    }
    let [t_type, t_module, t_dict, t_list, t_tuple, t_function, t_code, t_str, t_int, t_float, t_cell, _t_set] =
        [0u32, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11].map(TypeIdx);
    let n_classes = 600usize;
    let attr_names: Vec<StrId> = (0..3000).map(|i| intern(format!("attr_{i}"))).collect();
    // Each class has a fixed attribute list, and each attribute a fixed kind of value
    // (0: a fresh leaf, 1: a shared constant, 2: another recent object).
    let mut class_attrs: Vec<Vec<(StrId, u64)>> = Vec::with_capacity(n_classes);
    for c in 0..n_classes {
        types.address.push(0x5555_6000_0000 + c as u64 * 0x3b0);
        types
            .name
            .push(intern(format!("app.module{}.Class{c}", c % 40)));
        let n_attrs = 2 + rng.below(6) as usize;
        class_attrs.push(
            (0..n_attrs)
                .map(|_| (attr_names[rng.skewed(3000) as usize], rng.below(3)))
                .collect(),
        );
    }
    let key_names: Vec<StrId> = (0..2000).map(|i| intern(format!("key_{i}"))).collect();
    // Dicts come in shapes too: the same keys in the same order, values of the same kinds.
    let dict_shapes: Vec<Vec<(usize, u64)>> = (0..400)
        .map(|_| {
            (0..1 + rng.below(6))
                .map(|_| (rng.skewed(2000) as usize, rng.below(3)))
                .collect()
        })
        .collect();

    let mut nodes = Nodes::default();
    let mut pools = Pools::default();
    let node = |nodes: &mut Nodes,
                address: u64,
                t: TypeIdx,
                size: u64,
                flags: u8,
                refcount: u32,
                name: StrId,
                length: u64| {
        nodes.address.push(address);
        nodes.type_idx.push(t);
        nodes.size.push(size);
        nodes.flags.push(flags);
        nodes.refcount.push(refcount);
        nodes.name.push(name);
        nodes.length.push(length);
        NodeIdx(nodes.address.len() as u32 - 1)
    };
    let rc = |rng: &mut XorShift| match rng.below(10) {
        0..=5 => 1,
        6..=7 => 2,
        8 => 3 + rng.below(5) as u32,
        _ => 10 + rng.below(1000) as u32,
    };

    // Type objects and modules come first, as the oldest objects of the gc lists.
    let n_types = types.len();
    for t in 0..n_types {
        let name = types.name[t];
        node(
            &mut nodes,
            types.address[t],
            t_type,
            904,
            node_flags::GC_TRACKED | node_flags::IS_TYPE,
            50 + rng.below(500) as u32,
            name,
            0,
        );
    }
    let n_modules = 40usize;
    let first_module = nodes.len();
    for m in 0..n_modules {
        let name = intern(format!("app.module{m}"));
        node(
            &mut nodes,
            pools.alloc(72),
            t_module,
            72,
            node_flags::GC_TRACKED | node_flags::IS_MODULE,
            30,
            name,
            0,
        );
    }

    // Edges to leaves are recorded with a leaf id and resolved once leaves are numbered.
    #[derive(Clone)]
    enum Target {
        Node(u32),
        Leaf(u32),
    }
    struct Leaf {
        address: u64,
        t: TypeIdx,
        size: u64,
        length: u64,
    }
    let mut leaves: Vec<Leaf> = Vec::new();
    let new_leaf = |pools: &mut Pools, rng: &mut XorShift, leaves: &mut Vec<Leaf>| {
        let (t, size, length) = match rng.below(10) {
            0..=5 => {
                let len = 3 + rng.below(40);
                (t_str, 49 + len, len)
            }
            6..=8 => (t_int, 28 + 4 * rng.below(2), 0),
            _ => (t_float, 24, 0),
        };
        leaves.push(Leaf {
            address: pools.alloc(size),
            t,
            size,
            length,
        });
        leaves.len() as u32 - 1
    };
    // Interned strings shared by many dicts as keys.
    let shared_keys: Vec<u32> = (0..2000)
        .map(|_| new_leaf(&mut pools, &mut rng, &mut leaves))
        .collect();
    // Small ints, short interned strings, constants: referenced from everywhere.
    let common_leaves: Vec<u32> = (0..500)
        .map(|_| new_leaf(&mut pools, &mut rng, &mut leaves))
        .collect();

    let mut edges: Vec<Vec<(Target, LabelKind, u32)>> = vec![Vec::new(); nodes.len()];
    let recent = |rng: &mut XorShift, current: usize| {
        let back = 1 + rng.below(200) as usize;
        current.saturating_sub(back) as u32
    };
    while nodes.len() + leaves.len() < n_nodes {
        let me = nodes.len();
        let mut out = Vec::new();
        let value =
            |rng: &mut XorShift, pools: &mut Pools, leaves: &mut Vec<Leaf>, kind: u64| match kind {
                0 => Target::Leaf(new_leaf(pools, rng, leaves)),
                1 => Target::Leaf(common_leaves[rng.skewed(500) as usize]),
                _ => Target::Node(recent(rng, me)),
            };
        match rng.below(100) {
            0..=29 => {
                let class = rng.skewed(n_classes as u64) as usize;
                let t = TypeIdx((builtin_names.len() + class) as u32);
                out.push((Target::Node(t.0), LabelKind::Attr, 0));
                for (attr, kind) in &class_attrs[class] {
                    out.push((
                        value(&mut rng, &mut pools, &mut leaves, *kind),
                        LabelKind::Attr,
                        attr.0,
                    ));
                }
                node(
                    &mut nodes,
                    pools.alloc(56),
                    t,
                    56,
                    node_flags::GC_TRACKED,
                    rc(&mut rng),
                    NO_STR,
                    0,
                );
            }
            30..=54 => {
                let shape = &dict_shapes[rng.skewed(400) as usize];
                let len = shape.len() as u64;
                for (key, kind) in shape {
                    out.push((Target::Leaf(shared_keys[*key]), LabelKind::KeyObject, 0));
                    out.push((
                        value(&mut rng, &mut pools, &mut leaves, *kind),
                        LabelKind::Key,
                        key_names[*key].0,
                    ));
                }
                let size = if len <= 5 { 184 } else { 272 };
                node(
                    &mut nodes,
                    pools.alloc(size),
                    t_dict,
                    size,
                    node_flags::GC_TRACKED,
                    rc(&mut rng),
                    NO_STR,
                    len,
                );
            }
            55..=64 => {
                let len = rng.below(8);
                let kind = rng.below(3);
                for i in 0..len {
                    out.push((
                        value(&mut rng, &mut pools, &mut leaves, kind),
                        LabelKind::Index,
                        i as u32,
                    ));
                }
                let size = 56 + 8 * len;
                node(
                    &mut nodes,
                    pools.alloc(size),
                    t_list,
                    size,
                    node_flags::GC_TRACKED,
                    rc(&mut rng),
                    NO_STR,
                    len,
                );
            }
            65..=79 => {
                let len = 1 + rng.below(3);
                for i in 0..len {
                    let kind = rng.below(3);
                    out.push((
                        value(&mut rng, &mut pools, &mut leaves, kind),
                        LabelKind::Index,
                        i as u32,
                    ));
                }
                let size = 40 + 8 * len;
                node(
                    &mut nodes,
                    pools.alloc(size),
                    t_tuple,
                    size,
                    node_flags::GC_TRACKED,
                    rc(&mut rng),
                    NO_STR,
                    len,
                );
            }
            80..=89 => {
                let module = first_module + rng.below(n_modules as u64) as usize;
                out.push((
                    Target::Node(recent(&mut rng, me)),
                    LabelKind::Attr,
                    attr_names[0].0,
                ));
                out.push((
                    Target::Node(module as u32),
                    LabelKind::Attr,
                    attr_names[1].0,
                ));
                let name = attr_names[rng.skewed(3000) as usize];
                node(
                    &mut nodes,
                    pools.alloc(152),
                    t_function,
                    152,
                    node_flags::GC_TRACKED,
                    1 + rng.below(3) as u32,
                    name,
                    0,
                );
            }
            90..=94 => {
                out.push((Target::Node(recent(&mut rng, me)), LabelKind::None, 0));
                out.push((
                    value(&mut rng, &mut pools, &mut leaves, 0),
                    LabelKind::None,
                    0,
                ));
                let size = 200 + 8 * rng.below(100);
                node(
                    &mut nodes,
                    pools.alloc(size),
                    t_code,
                    size,
                    node_flags::GC_TRACKED,
                    1,
                    NO_STR,
                    0,
                );
            }
            _ => {
                out.push((
                    value(&mut rng, &mut pools, &mut leaves, 2),
                    LabelKind::None,
                    0,
                ));
                node(
                    &mut nodes,
                    pools.alloc(48),
                    t_cell,
                    48,
                    node_flags::GC_TRACKED,
                    1,
                    NO_STR,
                    0,
                );
            }
        }
        edges.push(out);
    }

    // Leaves, numbered after the tracked objects in address order.
    let first_leaf = nodes.len() as u32;
    let mut order: Vec<u32> = (0..leaves.len() as u32).collect();
    order.sort_by_key(|&l| leaves[l as usize].address);
    let mut leaf_index = vec![0u32; leaves.len()];
    for (pos, &l) in order.iter().enumerate() {
        leaf_index[l as usize] = first_leaf + pos as u32;
        let leaf = &leaves[l as usize];
        let refcount = if leaf.t == t_int && rng.chance(50) {
            u32::MAX
        } else {
            rc(&mut rng)
        };
        let flags = if refcount == u32::MAX {
            node_flags::IMMORTAL
        } else {
            0
        };
        node(
            &mut nodes,
            leaf.address,
            leaf.t,
            leaf.size,
            flags,
            refcount,
            NO_STR,
            leaf.length,
        );
        edges.push(Vec::new());
    }

    let mut csr = Edges {
        offsets: Vec::with_capacity(nodes.len() + 1),
        ..Edges::default()
    };
    csr.offsets.push(0);
    for out in &edges {
        for (target, kind, value) in out {
            let target = match target {
                Target::Node(n) => *n,
                Target::Leaf(l) => leaf_index[*l as usize],
            };
            csr.targets.push(NodeIdx(target));
            csr.label_kinds.push(*kind);
            csr.label_values.push(*value);
        }
        csr.offsets.push(csr.targets.len() as u64);
    }
    let roots = (0..n_modules)
        .map(|m| Root {
            kind: RootKind::Module,
            node: NodeIdx((first_module + m) as u32),
            name: NO_STR,
            extra: 0,
        })
        .collect();
    Snapshot {
        metadata: Metadata {
            pid: 4242,
            python_version: "3.11.7".into(),
            executable: "/usr/bin/python3".into(),
            argv: vec!["gunicorn".into(), "app:wsgi".into()],
            time_unix_ms: 1_700_000_000_000,
            rss_bytes: 1 << 30,
            n_gc_tracked: u64::from(first_leaf),
            n_frozen: 0,
            include_values: false,
            heapsight_version: "0.1.0".into(),
            walk_ms: 900,
        },
        strings,
        types,
        nodes,
        edges: csr,
        roots,
        bounds: Vec::new(),
    }
}

/// pymalloc-like placement: each size class fills a 16 KiB pool before taking the next
/// free pool; objects above 512 bytes come from the system allocator.
#[derive(Default)]
struct Pools {
    next_pool: u64,
    current: std::collections::HashMap<u64, (u64, u64)>,
    big_next: u64,
}

impl Pools {
    const ARENAS_BASE: u64 = 0x7f3a_0000_0000;
    const POOL: u64 = 16 * 1024;

    fn alloc(&mut self, size: u64) -> u64 {
        let class = size.max(1).div_ceil(16) * 16;
        if class > 512 {
            let address = 0x5600_0000_0000 + self.big_next;
            self.big_next += class.div_ceil(32) * 32;
            return address;
        }
        let (pool, used) = self
            .current
            .get(&class)
            .copied()
            .unwrap_or((u64::MAX, Self::POOL));
        if used + class > Self::POOL {
            let pool = Self::ARENAS_BASE + self.next_pool * Self::POOL;
            self.next_pool += 1;
            self.current.insert(class, (pool, 48 + class));
            return pool + 48;
        }
        self.current.insert(class, (pool, used + class));
        pool + used
    }
}
