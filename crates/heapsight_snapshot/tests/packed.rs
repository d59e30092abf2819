//! The capture's packed form against the in-memory model: the same snapshot either way.

mod common;

use heapsight_snapshot::{
    decode, encode, encode_packed, external_roots, read_file, write_packed_file, FormatError,
    KeyedRoot, LabelKind, LocalNames, NodeIdx, PackedNode, PackedNodes, PackedSnapshot, RootKind,
    Section, Snapshot, StrId, TypeIdx,
};

/// Packs a snapshot the way the capture does: node by node, labels as they come, with
/// keys unrelated to the node order (here descending, with gaps), as a capture's are.
fn pack(snap: &Snapshot) -> PackedSnapshot {
    pack_runs(snap, |node| key_of(snap, node), &[])
}

fn key_of(snap: &Snapshot, node: NodeIdx) -> u64 {
    (snap.n_nodes() - node.index()) as u64 * 3 + 5
}

/// Packed in runs, a new one from each node of `run_starts` (as walking threads would
/// have appended them, each its own nodes).
fn pack_runs(
    snap: &Snapshot,
    key_of: impl Fn(NodeIdx) -> u64,
    run_starts: &[usize],
) -> PackedSnapshot {
    let mut runs = vec![PackedNodes::default()];
    let n = &snap.nodes;
    let mut targets = Vec::new();
    for i in 0..snap.n_nodes() {
        if run_starts.contains(&i) {
            runs.push(PackedNodes::default());
        }
        let run = runs.last_mut().expect("a run");
        let range = snap.edges.range_of(NodeIdx(i as u32));
        targets.clear();
        for e in range.clone() {
            run.push_label(snap.edges.label_kinds[e], snap.edges.label_values[e]);
            targets.push(key_of(snap.edges.targets[e]));
        }
        run.push(
            PackedNode {
                address: n.address[i],
                key: key_of(NodeIdx(i as u32)),
                type_idx: n.type_idx[i],
                size: n.size[i],
                flags: n.flags[i],
                refcount: n.refcount[i],
                name: n.name[i],
                length: n.length[i],
            },
            &targets,
        );
    }
    PackedSnapshot {
        metadata: snap.metadata.clone(),
        strings: snap.strings.clone(),
        types: snap.types.clone(),
        runs,
        roots: snap
            .roots
            .iter()
            .map(|r| KeyedRoot {
                kind: r.kind,
                key: key_of(r.node),
                name: r.name,
                extra: r.extra,
            })
            .collect(),
        derive_external_roots: false,
        local_names: LocalNames::default(),
        bounds: snap.bounds.clone(),
    }
}

#[test]
fn external_roots_left_to_the_reader_are_derived_from_refcounts() {
    for snap in [
        common::every_feature_snapshot(),
        common::synthetic_web_heap(20_000, 5),
    ] {
        let mut packed = pack(&snap);
        packed.roots.retain(|r| r.kind != RootKind::External);
        packed.derive_external_roots = true;
        let mut expected = snap.clone();
        expected.roots.retain(|r| r.kind != RootKind::External);
        let derived = external_roots(&snap.nodes, &snap.edges.targets);
        assert!(!derived.is_empty());
        expected.roots.extend(derived);
        let written = decode(&encode_packed(&packed).expect("encodes")).expect("decodes");
        assert_eq!(written, expected);
        assert_eq!(packed.into_snapshot().expect("unpacks"), expected);
    }
}

#[test]
fn a_target_that_is_no_nodes_key_is_refused_when_read() {
    let snap = common::every_feature_snapshot();
    let mut stray = pack(&snap);
    // A last node whose one edge points to key 4 (keys are 5 + 3k).
    let run = &mut stray.runs[0];
    run.push_label(LabelKind::None, 0);
    run.push(
        PackedNode {
            address: 0x1000,
            key: 2,
            type_idx: TypeIdx(0),
            size: 16,
            flags: 0,
            refcount: 1,
            name: heapsight_snapshot::NO_STR,
            length: 0,
        },
        &[4],
    );
    let bytes = encode_packed(&stray).expect("the writer leaves keys to the reader");
    match decode(&bytes) {
        Err(FormatError::Corrupt { section, .. }) => assert_eq!(section, Section::EdgeTargets),
        other => panic!("expected a corrupt edge target, got {other:?}"),
    }
    assert!(matches!(
        stray.into_snapshot(),
        Err(FormatError::InvalidSnapshot { .. })
    ));
}

#[test]
fn packed_snapshots_unpack_and_write_to_the_same_snapshot() {
    let mut empty = Snapshot::default();
    empty.edges.offsets = vec![0];
    for snap in [
        common::every_feature_snapshot(),
        common::synthetic_web_heap(20_000, 7),
        empty,
    ] {
        let packed = pack(&snap);
        let written = decode(&encode_packed(&packed).expect("encodes")).expect("decodes");
        assert_eq!(written, snap);
        assert_eq!(packed.into_snapshot().expect("unpacks"), snap);
    }
}

#[test]
fn nodes_packed_in_runs_read_back_as_one_snapshot() {
    // Runs longer than 2^16 nodes (fresh starts of the target predictions within a run),
    // and runs starting anywhere, down to a single node. Empty runs are left out.
    let snap = common::synthetic_web_heap(140_000, 11);
    let n = snap.n_nodes();
    assert!(n > 1 << 17, "{n} nodes");
    let one_run = encode_packed(&pack_runs(&snap, |node| key_of(&snap, node), &[]))
        .expect("encodes")
        .len() as f64;
    for starts in [
        vec![0, 70_001],
        vec![1, 2, 65_536 + 3],
        vec![n / 2, n - 1],
        vec![n / 3, n / 3, n],
    ] {
        let packed = pack_runs(&snap, |node| key_of(&snap, node), &starts);
        let bytes = encode_packed(&packed).expect("encodes");
        assert_eq!(
            decode(&bytes).expect("decodes"),
            snap,
            "runs from {starts:?}"
        );
        // A fresh start per run, and a zstd frame per run and column: a few bytes more.
        assert!(
            (bytes.len() as f64) < one_run * 1.02,
            "{} vs {one_run}",
            bytes.len()
        );
        assert_eq!(packed.into_snapshot().expect("unpacks"), snap);
    }
}

#[test]
fn packed_files_are_written_atomically_and_read_back() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("packed.hsnap");
    let snap = common::synthetic_web_heap(5_000, 3);
    let stats = write_packed_file(&path, &pack(&snap)).expect("writes");
    assert_eq!(stats.n_nodes, snap.n_nodes() as u64);
    assert_eq!(read_file(&path).expect("reads"), snap);
    // Within a few bytes of the in-memory writer's file (the address shift may differ).
    let reference = encode(&snap).expect("encodes").len() as f64;
    assert!((stats.file_bytes as f64) < reference * 1.1);
}

#[test]
fn inconsistent_packed_snapshots_are_refused_before_writing() {
    let snap = common::every_feature_snapshot();
    let refused = |packed: &PackedSnapshot| match encode_packed(packed) {
        Err(FormatError::InvalidSnapshot { detail }) => detail,
        other => panic!("expected a refusal, got {other:?}"),
    };
    let mut missing_target = pack(&snap);
    missing_target.runs[0].push_label(LabelKind::None, 0);
    assert!(refused(&missing_target).contains("targets"));
    let mut missing_key = pack(&snap);
    missing_key.runs.push(PackedNodes::default());
    missing_key.runs[1].keys.push(1);
    assert!(refused(&missing_key).contains("column key of run 1"));
    // A node appended, in a run of its own, to a packed copy of `snap`.
    let with_node = |address: u64, type_idx: TypeIdx, name: StrId, labels: &[u32]| {
        let mut packed = pack(&snap);
        let mut run = PackedNodes::default();
        for &label in labels {
            run.push_label(LabelKind::Key, label);
        }
        let targets = vec![5; labels.len()];
        run.push(
            PackedNode {
                address,
                key: 1,
                type_idx,
                size: 16,
                flags: 0,
                refcount: 1,
                name,
                length: 0,
            },
            &targets,
        );
        packed.runs.push(run);
        packed
    };
    let no_name = heapsight_snapshot::NO_STR;
    let misaligned = with_node(0x1001, snap.nodes.type_idx[0], no_name, &[]);
    assert!(refused(&misaligned).contains("8-aligned"));
    let mut secret = pack(&snap);
    secret.metadata.include_values = false;
    secret.runs[0].flags[0] |= heapsight_snapshot::node_flags::HAS_VALUE;
    assert!(refused(&secret).contains("include_values"));
    let n_types = snap.types.len() as u32;
    let n_strings = snap.strings.len() as u32;
    let stray_type = with_node(0x1000, TypeIdx(n_types + 200), no_name, &[]);
    assert!(refused(&stray_type).contains("node type"));
    let stray_name = with_node(0x1000, TypeIdx(0), StrId(n_strings + 200), &[]);
    assert!(refused(&stray_name).contains("node name string"));
    // A stray string id in a label pushed, or renamed in.
    let stray_label = with_node(0x1000, TypeIdx(0), no_name, &[n_strings + 300]);
    assert!(refused(&stray_label).contains("edge label string"));
    let mut stray_name = pack(&snap);
    stray_name.local_names = LocalNames {
        lists: vec![vec![StrId(n_strings + 300)]],
        holders: vec![(key_of(&snap, NodeIdx(0)), 0)],
    };
    assert!(refused(&stray_name).contains("local names"));
    let mut stray_list = pack(&snap);
    stray_list.local_names.holders = vec![(key_of(&snap, NodeIdx(0)), 0)];
    assert!(refused(&stray_list).contains("local names"));
}

#[test]
fn a_refused_write_keeps_the_earlier_file_and_leaves_no_other() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("kept.hsnap");
    let snap = common::synthetic_web_heap(2_000, 4);
    write_packed_file(&path, &pack(&snap)).expect("writes");
    let earlier = std::fs::read(&path).expect("reads back");
    let mut broken = pack(&snap);
    broken.metadata.include_values = false;
    broken.runs[0].flags[0] |= heapsight_snapshot::node_flags::HAS_VALUE;
    match write_packed_file(&path, &broken) {
        Err(FormatError::InvalidSnapshot { detail }) => assert!(detail.contains("include_values")),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(std::fs::read(&path).expect("still there"), earlier);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("lists")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("kept.hsnap")]);
}

#[test]
fn sizes_are_patched_and_local_names_given_where_listed() {
    let snap = common::every_feature_snapshot();
    // In runs, so that the patches are split between them.
    let last = snap.n_nodes() as u64 - 1;
    let mut packed = pack_runs(&snap, |node| key_of(&snap, node), &[3, last as usize]);
    packed.patch_sizes(&[(0, 12_345), (last, 7)]);
    // Every Index label of the holders becomes a Local named by string 0.
    let holders: Vec<NodeIdx> = (0..snap.n_nodes() as u32)
        .map(NodeIdx)
        .filter(|&node| {
            snap.edges
                .range_of(node)
                .any(|e| snap.edges.label_kinds[e] == LabelKind::Index)
        })
        .collect();
    assert!(!holders.is_empty(), "the fixture has index labels");
    // Indices past the list (the fixture has u32::MAX) keep their label.
    let named = 8;
    let mut keyed: Vec<(u64, u32)> = holders.iter().map(|&h| (key_of(&snap, h), 0)).collect();
    keyed.sort_unstable();
    packed.local_names = LocalNames {
        lists: vec![vec![StrId(0); named]],
        holders: keyed,
    };
    let written = decode(&encode_packed(&packed).expect("encodes")).expect("decodes");
    let unpacked = packed.into_snapshot().expect("unpacks");
    assert_eq!(written, unpacked);
    assert_eq!(unpacked.nodes.size[0], 12_345);
    assert_eq!(unpacked.nodes.size[last as usize], 7);
    assert_eq!(
        unpacked.nodes.size[1..last as usize],
        snap.nodes.size[1..last as usize]
    );
    for e in 0..snap.edges.len() {
        let was = snap.edges.label_kinds[e];
        let now = (
            unpacked.edges.label_kinds[e],
            unpacked.edges.label_values[e],
        );
        if was == LabelKind::Index && (snap.edges.label_values[e] as usize) < named {
            assert_eq!(now, (LabelKind::Local, 0));
        } else {
            assert_eq!(now, (was, snap.edges.label_values[e]));
        }
    }
}

#[test]
fn a_holder_of_names_that_is_no_node_is_refused_when_read() {
    let snap = common::every_feature_snapshot();
    let mut packed = pack(&snap);
    packed.local_names = LocalNames {
        lists: vec![vec![StrId(0)]],
        holders: vec![(4, 0)], // keys are 5 + 3k
    };
    match decode(&encode_packed(&packed).expect("encodes")) {
        Err(FormatError::Corrupt { section, .. }) => assert_eq!(section, Section::LocalNames),
        other => panic!("expected corrupt local names, got {other:?}"),
    }
}
