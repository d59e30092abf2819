//! The `.hsnap` format end to end: round trips, and every way a file can be damaged.

mod common;

use std::path::Path;

use heapsight_snapshot::layout::{
    SectionHeader, CODEC_ZSTD, END_ID, FILE_HEADER_LEN, MAGIC, SECTION_HEADER_LEN,
};
use heapsight_snapshot::{
    decode, encode, node_flags, read_file, read_metadata, write_file, write_to, ForeignKind,
    FormatError, Section, SnapshotBuilder, FORMAT_VERSION,
};

use common::XorShift;

/// One section as found by walking the file: where its header starts and its id.
#[derive(Debug, Clone, Copy)]
struct Located {
    offset: usize,
    id: u16,
    /// Header plus payload.
    len: usize,
}

/// Walks a well-formed file independently of the reader (a second implementation of the
/// framing, so the tests do not trust the code they test).
fn sections_of(bytes: &[u8]) -> Vec<Located> {
    let mut at = FILE_HEADER_LEN;
    let mut out = Vec::new();
    while at < bytes.len() {
        let id = u16::from_le_bytes([bytes[at], bytes[at + 1]]);
        let stored =
            u64::from_le_bytes(bytes[at + 8..at + 16].try_into().expect("8 bytes")) as usize;
        out.push(Located {
            offset: at,
            id,
            len: SECTION_HEADER_LEN + stored,
        });
        at += SECTION_HEADER_LEN + stored;
    }
    assert_eq!(at, bytes.len());
    out
}

/// Replaces the payload of the section with `id` by `raw`, compressed and checksummed
/// properly, so that only the content is wrong.
fn with_payload(bytes: &[u8], id: u16, raw: &[u8]) -> Vec<u8> {
    let located = sections_of(bytes)
        .into_iter()
        .find(|s| s.id == id)
        .expect("section present");
    let stored = zstd::bulk::compress(raw, 1).expect("compress");
    let header = SectionHeader {
        id,
        codec: CODEC_ZSTD,
        payload_crc: crc32fast::hash(&stored),
        stored_len: stored.len() as u64,
        raw_len: raw.len() as u64,
    };
    let mut out = bytes[..located.offset].to_vec();
    out.extend_from_slice(&header.encode());
    out.extend_from_slice(&stored);
    out.extend_from_slice(&bytes[located.offset + located.len..]);
    out
}

/// The decompressed payload of the section with `id`.
fn payload_of(bytes: &[u8], id: u16) -> Vec<u8> {
    let s = sections_of(bytes)
        .into_iter()
        .find(|s| s.id == id)
        .expect("section present");
    zstd::stream::decode_all(&bytes[s.offset + SECTION_HEADER_LEN..s.offset + s.len])
        .expect("decompress")
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn id(section: Section) -> u16 {
    section.id().expect("a real section")
}

fn every_feature_bytes() -> Vec<u8> {
    encode(&common::every_feature_snapshot()).expect("encode")
}

#[test]
fn every_feature_round_trips_in_memory_and_on_disk() {
    let snap = common::every_feature_snapshot();
    snap.validate().expect("test data is valid");
    let bytes = encode(&snap).expect("encode");
    assert_eq!(decode(&bytes).expect("decode"), snap);

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("every.hsnap");
    let stats = write_file(&path, &snap).expect("write");
    assert_eq!(
        stats.file_bytes,
        std::fs::metadata(&path).expect("stat").len()
    );
    assert_eq!(
        std::fs::read(&path).expect("read bytes"),
        bytes,
        "file and memory encodings agree"
    );
    assert_eq!(read_file(&path).expect("read"), snap);

    let info = read_metadata(&path).expect("metadata");
    assert_eq!(info.metadata, snap.metadata);
    assert_eq!(info.format_version, FORMAT_VERSION);
    assert_eq!(info.file_bytes, stats.file_bytes);
    assert_eq!(info.counts.n_nodes, snap.n_nodes() as u64);
    assert_eq!(info.counts.n_edges, snap.edges.len() as u64);
    assert_eq!(info.counts.n_roots, 5);
    assert_eq!(info.sections, stats.sections);
}

#[test]
fn empty_snapshots_round_trip() {
    let empty = SnapshotBuilder::new().finish();
    assert_eq!(
        decode(&encode(&empty).expect("encode")).expect("decode"),
        empty
    );
    let mut b = SnapshotBuilder::new();
    b.metadata_mut().python_version = "3.13.0".into();
    b.intern("only a string");
    let strings_only = b.finish();
    assert_eq!(
        decode(&encode(&strings_only).expect("encode")).expect("decode"),
        strings_only
    );
}

#[test]
fn synthetic_heap_round_trips() {
    let snap = common::synthetic_web_heap(30_000, 11);
    assert!(decode(&encode(&snap).expect("encode")).expect("decode") == snap);
}

#[test]
fn truncation_at_every_offset_is_reported_as_truncation() {
    let bytes = every_feature_bytes();
    for len in 0..bytes.len() {
        match decode(&bytes[..len]) {
            Err(FormatError::NotASnapshot {
                looks_like: ForeignKind::Empty,
            }) if len == 0 => {}
            Err(FormatError::Truncated { section }) => {
                if len < FILE_HEADER_LEN {
                    assert_eq!(section, Section::FileHeader, "at {len}");
                }
            }
            other => panic!("truncated to {len} of {} bytes: {other:?}", bytes.len()),
        }
    }
}

#[test]
fn truncation_at_each_section_boundary_names_the_missing_section() {
    let snap = common::synthetic_web_heap(5_000, 3);
    let bytes = encode(&snap).expect("encode");
    let sections = sections_of(&bytes);
    assert_eq!(sections.len(), 18, "17 sections and the end marker");
    for s in &sections {
        let expected = Section::from_id(s.id).expect("known id");
        // Cut right before the section, inside its header, and inside its payload.
        for cut in [s.offset, s.offset + 5, s.offset + SECTION_HEADER_LEN + 1] {
            if cut >= bytes.len() {
                continue;
            }
            match decode(&bytes[..cut]) {
                Err(FormatError::Truncated { section }) => {
                    assert_eq!(section, expected, "cut at {cut}")
                }
                other => panic!("cut at {cut} in {expected}: {other:?}"),
            }
        }
    }
    // Files on disk behave the same, and read_metadata notices too.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cut.hsnap");
    let cut = sections[13].offset + 40;
    std::fs::write(&path, &bytes[..cut]).expect("write");
    let err = read_file(&path).expect_err("truncated");
    assert!(
        matches!(
            err,
            FormatError::Truncated {
                section: Section::EdgeTargets
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "the file is truncated in section 'edge targets' (was the capture interrupted or the \
         disk full?); take a new snapshot"
    );
    let err = read_metadata(&path).expect_err("truncated");
    assert!(
        matches!(
            err,
            FormatError::Truncated {
                section: Section::EdgeTargets
            }
        ),
        "{err:?}"
    );
}

#[test]
fn truncation_at_many_offsets_of_a_larger_file() {
    let bytes = encode(&common::synthetic_web_heap(2_000, 5)).expect("encode");
    for len in (0..bytes.len()).step_by(53).chain([bytes.len() - 1]) {
        let result = decode(&bytes[..len]);
        assert!(
            matches!(
                result,
                Err(FormatError::Truncated { .. }) | Err(FormatError::NotASnapshot { .. })
            ),
            "len {len}: {result:?}"
        );
    }
}

fn assert_every_flip_detected(bytes: &[u8], flips: usize, seed: u64) {
    let mut rng = XorShift::new(seed);
    let mut damaged = bytes.to_vec();
    for i in 0..flips {
        let at = rng.below(bytes.len() as u64) as usize;
        let bit = 1u8 << rng.below(8);
        damaged[at] ^= bit;
        let result = decode(&damaged);
        assert!(
            result.is_err(),
            "flip {i} of bit {bit:#x} at byte {at} went unnoticed"
        );
        damaged[at] ^= bit;
    }
}

#[test]
fn random_bit_flips_are_all_detected() {
    assert_every_flip_detected(&every_feature_bytes(), 2000, 0x5eed);
    let bytes = encode(&common::synthetic_web_heap(1_000, 9)).expect("encode");
    assert_every_flip_detected(&bytes, 1000, 0xf00d);
}

#[test]
fn every_single_bit_flip_of_the_headers_is_detected() {
    let bytes = every_feature_bytes();
    let mut damaged = bytes.clone();
    let header_bytes = (0..FILE_HEADER_LEN).chain(
        sections_of(&bytes)
            .into_iter()
            .flat_map(|s| s.offset..s.offset + SECTION_HEADER_LEN),
    );
    for at in header_bytes {
        for bit in 0..8 {
            damaged[at] ^= 1 << bit;
            assert!(
                decode(&damaged).is_err(),
                "flip of bit {bit} at byte {at} went unnoticed"
            );
            damaged[at] ^= 1 << bit;
        }
    }
}

fn looks_like(bytes: &[u8]) -> ForeignKind {
    match decode(bytes) {
        Err(FormatError::NotASnapshot { looks_like }) => looks_like,
        other => panic!("expected NotASnapshot, got {other:?}"),
    }
}

#[test]
fn foreign_files_are_not_snapshots() {
    assert_eq!(looks_like(b""), ForeignKind::Empty);
    assert_eq!(
        looks_like(b"{\"nodes\": [1, 2, 3], \"edges\": []}\n"),
        ForeignKind::Text
    );
    assert_eq!(looks_like(b"hi"), ForeignKind::Text);
    let png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00\x00\x01";
    assert_eq!(looks_like(png), ForeignKind::Png);
    // `printf hello | gzip -n`
    let gzip = [
        0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xcb, 0x48, 0xcd, 0xc9, 0xc9,
        0x07, 0x00, 0x86, 0xa6, 0x10, 0x36, 0x05, 0x00, 0x00, 0x00,
    ];
    assert_eq!(looks_like(&gzip), ForeignKind::Gzip);
    let zst = zstd::bulk::compress(b"not a snapshot at all", 3).expect("compress");
    assert_eq!(looks_like(&zst), ForeignKind::Zstd);
    assert!(matches!(
        looks_like(&[0u8, 1, 2, 3, 250, 251, 252, 253, 254, 255, 0, 0, 0, 0, 0, 0, 0]),
        ForeignKind::Unknown { .. }
    ));

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("empty.hsnap");
    std::fs::write(&path, b"").expect("write");
    let err = read_file(&path).expect_err("empty");
    assert!(err.to_string().contains("the file is empty"), "{err}");
    let err = read_metadata(&path).expect_err("empty");
    assert!(
        matches!(
            err,
            FormatError::NotASnapshot {
                looks_like: ForeignKind::Empty
            }
        ),
        "{err:?}"
    );
}

#[test]
fn text_mode_transfers_are_recognised() {
    let bytes = every_feature_bytes();
    // CRLF -> LF: the magic loses its \r.
    let mut lf = bytes[..6].to_vec();
    lf.extend_from_slice(&bytes[7..]);
    assert_eq!(looks_like(&lf), ForeignKind::DamagedByTextTransfer);
    // LF -> CRLF: every \n gains a \r.
    let mut crlf = Vec::new();
    for &b in &bytes {
        if b == b'\n' {
            crlf.push(b'\r');
        }
        crlf.push(b);
    }
    assert_eq!(looks_like(&crlf), ForeignKind::DamagedByTextTransfer);
    // 7-bit transfer: the high bit of every byte is cleared.
    let seven_bit: Vec<u8> = bytes.iter().map(|b| b & 0x7f).collect();
    assert_eq!(looks_like(&seven_bit), ForeignKind::DamagedByTextTransfer);
    let message = decode(&lf).expect_err("damaged").to_string();
    assert!(message.contains("binary mode"), "{message}");
}

fn with_version(bytes: &[u8], version: u32) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[8..12].copy_from_slice(&version.to_le_bytes());
    let crc = crc32fast::hash(&out[..12]);
    out[12..16].copy_from_slice(&crc.to_le_bytes());
    out
}

#[test]
fn future_versions_are_refused_with_advice() {
    let future = with_version(&every_feature_bytes(), FORMAT_VERSION + 1);
    match decode(&future) {
        Err(FormatError::UnsupportedVersion { found, supported }) => {
            assert_eq!((found, supported), (FORMAT_VERSION + 1, FORMAT_VERSION));
        }
        other => panic!("{other:?}"),
    }
    let message = decode(&future).expect_err("future").to_string();
    assert!(message.contains("upgrade heapsight"), "{message}");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("future.hsnap");
    std::fs::write(&path, &future).expect("write");
    assert!(matches!(
        read_metadata(&path),
        Err(FormatError::UnsupportedVersion { .. })
    ));
    assert!(matches!(
        decode(&with_version(&every_feature_bytes(), 0)),
        Err(FormatError::UnsupportedVersion { found: 0, .. })
    ));
}

#[test]
fn a_damaged_magic_with_a_valid_header_is_corruption() {
    let mut bytes = every_feature_bytes();
    bytes[2] ^= 0x01;
    assert!(matches!(
        decode(&bytes),
        Err(FormatError::Corrupt {
            section: Section::FileHeader,
            ..
        })
    ));
}

#[test]
fn bytes_after_the_end_marker_are_corruption() {
    let mut bytes = every_feature_bytes();
    bytes.extend_from_slice(b"trailing");
    let err = decode(&bytes).expect_err("trailing data");
    assert!(
        matches!(
            err,
            FormatError::Corrupt {
                section: Section::End,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("8 unexpected bytes"), "{err}");
}

/// Inserts a complete section right before the end marker.
fn with_extra_section(bytes: &[u8], id: u16, raw: &[u8], damage_crc: bool) -> Vec<u8> {
    let end = sections_of(bytes).last().expect("end marker").offset;
    let stored = zstd::bulk::compress(raw, 1).expect("compress");
    let header = SectionHeader {
        id,
        codec: CODEC_ZSTD,
        payload_crc: crc32fast::hash(&stored) ^ u32::from(damage_crc),
        stored_len: stored.len() as u64,
        raw_len: raw.len() as u64,
    };
    let mut out = bytes[..end].to_vec();
    out.extend_from_slice(&header.encode());
    out.extend_from_slice(&stored);
    out.extend_from_slice(&bytes[end..]);
    out
}

#[test]
fn unknown_optional_sections_are_skipped_but_checked() {
    let snap = common::every_feature_snapshot();
    let bytes = encode(&snap).expect("encode");
    let extended = with_extra_section(&bytes, 0x8123, b"allocation tracebacks, some day", false);
    assert_eq!(decode(&extended).expect("optional section skipped"), snap);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("extended.hsnap");
    std::fs::write(&path, &extended).expect("write");
    let info = read_metadata(&path).expect("metadata");
    assert_eq!(
        info.sections.last().map(|s| s.section),
        Some(Section::Optional(0x8123))
    );

    let damaged = with_extra_section(&bytes, 0x8123, b"payload", true);
    assert!(matches!(
        decode(&damaged),
        Err(FormatError::Corrupt {
            section: Section::Optional(0x8123),
            ..
        })
    ));
    let unknown_required = with_extra_section(&bytes, 0x0042, b"payload", false);
    assert!(matches!(
        decode(&unknown_required),
        Err(FormatError::Corrupt {
            section: Section::End,
            ..
        })
    ));
}

#[test]
fn container_bounds_round_trip_and_bad_ones_are_corruption() {
    let snap = common::every_feature_snapshot();
    assert_eq!(
        snap.bounds.len(),
        2,
        "test data has a bounded and an unbounded container"
    );
    let bytes = encode(&snap).expect("encode");
    let bounds_id = 0x8001;
    assert_eq!(decode(&bytes).expect("decode").bounds, snap.bounds);
    assert_eq!(
        Section::Optional(bounds_id).to_string(),
        "container bounds",
        "errors name the section"
    );
    let mut without = snap.clone();
    without.bounds.clear();
    let plain = encode(&without).expect("encode");
    assert!(
        sections_of(&plain).iter().all(|s| s.id != bounds_id),
        "no section when there is nothing to say"
    );
    let n = snap.n_nodes() as u64;
    let mut out_of_range = Vec::new();
    put_varint(&mut out_of_range, 1);
    put_varint(&mut out_of_range, n);
    put_varint(&mut out_of_range, 5);
    let mut twice = Vec::new();
    put_varint(&mut twice, 2);
    for _ in 0..2 {
        put_varint(&mut twice, 0);
        put_varint(&mut twice, 5);
    }
    for bad in [out_of_range, twice, vec![0x80]] {
        let damaged = with_extra_section(&plain, bounds_id, &bad, false);
        assert!(
            matches!(
                decode(&damaged),
                Err(FormatError::Corrupt {
                    section: Section::Optional(0x8001),
                    ..
                })
            ),
            "{:?}",
            decode(&damaged)
        );
    }
}

#[test]
fn sections_out_of_order_are_corruption() {
    let bytes = every_feature_bytes();
    let s = sections_of(&bytes);
    // Swap node sizes and node flags.
    let (a, b) = (s[6], s[7]);
    let mut swapped = bytes[..a.offset].to_vec();
    swapped.extend_from_slice(&bytes[b.offset..b.offset + b.len]);
    swapped.extend_from_slice(&bytes[a.offset..a.offset + a.len]);
    swapped.extend_from_slice(&bytes[b.offset + b.len..]);
    let err = decode(&swapped).expect_err("out of order");
    assert!(
        matches!(
            err,
            FormatError::Corrupt {
                section: Section::NodeSize,
                ..
            }
        ),
        "{err:?}"
    );
    // An end marker in the middle.
    let mut early_end = bytes[..a.offset].to_vec();
    early_end.extend_from_slice(&SectionHeader::end_marker().encode());
    assert!(matches!(
        decode(&early_end),
        Err(FormatError::Corrupt {
            section: Section::NodeSize,
            ..
        })
    ));
}

#[test]
fn forged_lengths_allocate_nothing_and_fail() {
    let bytes = every_feature_bytes();
    let s = sections_of(&bytes)[4]; // node addresses
    let header_at = s.offset;
    let original: [u8; SECTION_HEADER_LEN] = bytes[header_at..header_at + SECTION_HEADER_LEN]
        .try_into()
        .expect("28 bytes");
    let header = SectionHeader::decode(&original).expect("valid header");
    let forge = |h: SectionHeader| {
        let mut out = bytes.clone();
        out[header_at..header_at + SECTION_HEADER_LEN].copy_from_slice(&h.encode());
        out
    };
    // A zstd bomb claim: 1 TiB from a few bytes.
    let huge_raw = forge(SectionHeader {
        raw_len: 1 << 40,
        ..header
    });
    let err = decode(&huge_raw).expect_err("forged raw length");
    assert!(
        matches!(
            err,
            FormatError::Corrupt {
                section: Section::NodeAddress,
                ..
            }
        ),
        "{err:?}"
    );
    // A stored length past the end of the file.
    let huge_stored = forge(SectionHeader {
        stored_len: u64::MAX,
        ..header
    });
    assert!(matches!(
        decode(&huge_stored),
        Err(FormatError::Truncated {
            section: Section::NodeAddress
        })
    ));
}

/// The metadata section with its counts replaced.
fn metadata_with_counts(bytes: &[u8], counts: [u64; 5]) -> Vec<u8> {
    let raw = payload_of(bytes, id(Section::Metadata));
    let mut reader = raw.as_slice();
    for _ in 0..5 {
        while reader[0] & 0x80 != 0 {
            reader = &reader[1..];
        }
        reader = &reader[1..];
    }
    let mut forged = Vec::new();
    for c in counts {
        put_varint(&mut forged, c);
    }
    forged.extend_from_slice(reader);
    with_payload(bytes, id(Section::Metadata), &forged)
}

#[test]
fn forged_counts_are_corruption_not_huge_allocations() {
    let snap = common::every_feature_snapshot();
    let bytes = encode(&snap).expect("encode");
    let real = [
        snap.strings.len() as u64,
        snap.types.len() as u64,
        snap.n_nodes() as u64,
        snap.edges.len() as u64,
        snap.roots.len() as u64,
    ];
    assert_eq!(
        decode(&metadata_with_counts(&bytes, real)).expect("unchanged counts"),
        snap
    );
    for (i, forged) in [
        (2usize, u64::from(u32::MAX) - 2),
        (3, u64::MAX),
        (0, 1 << 31),
        (4, 1 << 40),
        (2, 3),
    ] {
        let mut counts = real;
        counts[i] = forged;
        let result = decode(&metadata_with_counts(&bytes, counts));
        assert!(
            matches!(result, Err(FormatError::Corrupt { .. })),
            "count {i} = {forged}: {result:?}"
        );
    }
}

#[test]
fn values_without_opt_in_are_refused_both_ways() {
    let mut snap = common::every_feature_snapshot();
    snap.metadata.include_values = false;
    let err = encode(&snap).expect_err("privacy");
    assert!(
        matches!(err, FormatError::InvalidSnapshot { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("include_values"), "{err}");

    // A file claiming no values while carrying one.
    let mut clean = common::every_feature_snapshot();
    clean.metadata.include_values = false;
    for flags in &mut clean.nodes.flags {
        *flags &= !node_flags::HAS_VALUE;
    }
    let bytes = encode(&clean).expect("encode");
    let mut flags = clean.nodes.flags.clone();
    flags[0] |= node_flags::HAS_VALUE;
    let forged = with_payload(&bytes, id(Section::NodeFlags), &flags);
    let err = decode(&forged).expect_err("value without opt-in");
    assert!(
        matches!(
            err,
            FormatError::Corrupt {
                section: Section::CrossReferences,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn inconsistent_contents_map_to_corrupt() {
    let snap = common::every_feature_snapshot();
    let bytes = encode(&snap).expect("encode");
    // Node 0 typed with a type that does not exist.
    let mut types = Vec::new();
    put_varint(&mut types, 99);
    for t in &snap.nodes.type_idx[1..] {
        put_varint(&mut types, u64::from(t.0));
    }
    let err = decode(&with_payload(&bytes, id(Section::NodeType), &types)).expect_err("bad type");
    assert!(matches!(err, FormatError::Corrupt { .. }), "{err:?}");
    // Extra bytes at the end of a column.
    let mut sizes = payload_of(&bytes, id(Section::NodeSize));
    sizes.push(0);
    let err = decode(&with_payload(&bytes, id(Section::NodeSize), &sizes)).expect_err("extra");
    assert!(
        matches!(
            err,
            FormatError::Corrupt {
                section: Section::NodeSize,
                ..
            }
        ),
        "{err:?}"
    );
    // A string that is not UTF-8.
    let mut strings = payload_of(&bytes, id(Section::Strings));
    let last = strings.len() - 1;
    strings[last] = 0xff;
    let err = decode(&with_payload(&bytes, id(Section::Strings), &strings)).expect_err("utf-8");
    assert!(
        matches!(
            err,
            FormatError::Corrupt {
                section: Section::Strings,
                ..
            }
        ),
        "{err:?}"
    );
    // A root of an unknown kind.
    let mut roots = payload_of(&bytes, id(Section::Roots));
    roots[1] = 9;
    let err = decode(&with_payload(&bytes, id(Section::Roots), &roots)).expect_err("root kind");
    assert!(
        matches!(
            err,
            FormatError::Corrupt {
                section: Section::Roots,
                ..
            }
        ),
        "{err:?}"
    );
}

fn temp_leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("list dir")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".tmp"))
        .collect()
}

#[test]
fn writing_into_a_missing_directory_is_an_io_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("no/such/dir/app.hsnap");
    let err = write_file(&path, &common::every_feature_snapshot()).expect_err("missing dir");
    assert!(matches!(err, FormatError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("exists"), "{err}");
    assert!(temp_leftovers(dir.path()).is_empty());
}

#[test]
fn a_failed_replace_keeps_what_was_there() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The target is a directory: the final rename fails after the data was written.
    let target = dir.path().join("app.hsnap");
    std::fs::create_dir(&target).expect("mkdir");
    std::fs::write(target.join("keep.txt"), b"keep").expect("seed");
    let err = write_file(&target, &common::every_feature_snapshot()).expect_err("target is a dir");
    assert!(matches!(err, FormatError::Io { .. }), "{err:?}");
    assert_eq!(
        std::fs::read(target.join("keep.txt")).expect("kept"),
        b"keep"
    );
    assert!(
        temp_leftovers(dir.path()).is_empty(),
        "{:?}",
        temp_leftovers(dir.path())
    );

    // An inconsistent snapshot never touches the earlier file.
    let earlier = dir.path().join("earlier.hsnap");
    write_file(&earlier, &common::every_feature_snapshot()).expect("write");
    let before = std::fs::read(&earlier).expect("read");
    let mut broken = common::every_feature_snapshot();
    broken.edges.offsets.pop();
    assert!(matches!(
        write_file(&earlier, &broken),
        Err(FormatError::InvalidSnapshot { .. })
    ));
    assert_eq!(std::fs::read(&earlier).expect("read"), before);
    assert!(temp_leftovers(dir.path()).is_empty());

    // Reading a directory is an I/O error, not a panic or a foreign-file verdict.
    assert!(matches!(read_file(dir.path()), Err(FormatError::Io { .. })));
}

#[test]
fn a_full_disk_is_reported_as_such() {
    let Ok(mut full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        eprintln!("no /dev/full here; skipping");
        return;
    };
    let err = write_to(&mut full, &common::synthetic_web_heap(2_000, 1)).expect_err("ENOSPC");
    assert!(matches!(err, FormatError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("the disk is full"), "{err}");
}

#[test]
fn file_header_layout_is_as_documented() {
    let bytes = every_feature_bytes();
    assert_eq!(&bytes[..8], &MAGIC);
    assert_eq!(&bytes[..8], b"\x89HSNAP\r\n");
    assert_eq!(
        u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")),
        3
    );
    assert_eq!(
        u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes")),
        crc32fast::hash(&bytes[..12])
    );
    let ids: Vec<u16> = sections_of(&bytes).iter().map(|s| s.id).collect();
    assert_eq!(
        ids,
        [
            0x01, 0x02, 0x03, 0x04, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x20, 0x21,
            0x22, 0x30, 0x31, 0x8001, END_ID
        ]
    );
    let end: [u8; SECTION_HEADER_LEN] = bytes[bytes.len() - SECTION_HEADER_LEN..]
        .try_into()
        .expect("28 bytes");
    assert_eq!(SectionHeader::decode(&end), Ok(SectionHeader::end_marker()));
}

/// Written by the version 1 writer (edge targets as node indices, every root stored):
/// still read, as the same snapshot.
#[test]
fn version_1_files_are_still_read() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/every-feature-v1.hsnap");
    let bytes = std::fs::read(&path).expect("fixture");
    assert_eq!(
        u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")),
        1
    );
    assert_eq!(
        decode(&bytes).expect("decodes"),
        common::every_feature_snapshot()
    );
    assert_eq!(
        read_file(&path).expect("reads"),
        common::every_feature_snapshot()
    );
    let info = read_metadata(&path).expect("metadata");
    assert_eq!(info.format_version, 1);
    assert!(info.sections.iter().all(|s| s.section != Section::NodeKeys));
}

/// Written by the version 2 writer (node keys 5 + 3k in descending order, external
/// roots left to the reader, no node runs section): still read, as one run.
#[test]
fn version_2_files_are_still_read() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/every-feature-v2.hsnap");
    let bytes = std::fs::read(&path).expect("fixture");
    assert_eq!(
        u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")),
        2
    );
    let mut expected = common::every_feature_snapshot();
    expected
        .roots
        .retain(|r| r.kind != heapsight_snapshot::RootKind::External);
    let derived = heapsight_snapshot::external_roots(&expected.nodes, &expected.edges.targets);
    assert!(!derived.is_empty());
    expected.roots.extend(derived);
    assert_eq!(decode(&bytes).expect("decodes"), expected);
    let info = read_metadata(&path).expect("metadata");
    assert_eq!(info.format_version, 2);
    assert!(info.sections.iter().all(|s| s.section != Section::NodeRuns));
}

#[test]
fn node_runs_that_do_not_add_up_or_are_empty_are_corruption() {
    let snap = common::every_feature_snapshot();
    let n = u8::try_from(snap.n_nodes()).expect("below 128 nodes");
    assert!(n < 128);
    let bytes = encode(&snap).expect("encode");
    // Varints below 128 are one byte each: a count, then the runs.
    for (runs, says) in [
        (vec![1, n - 1], "add up to"),
        (vec![2, n - 1, 0], "empty"),
        (vec![2, 0, n], "empty"),
        (vec![0], "add up to"),
        (vec![n + 1], "node runs for"),
    ] {
        let forged = with_payload(&bytes, id(Section::NodeRuns), &runs);
        match decode(&forged) {
            Err(FormatError::Corrupt { section, detail }) => {
                assert_eq!(section, Section::NodeRuns);
                assert!(detail.contains(says), "{runs:?}: {detail}");
            }
            other => panic!("{runs:?}: expected corruption, got {other:?}"),
        }
    }
    // Split in two, the second run's deltas start from 0: the same bytes mean other
    // addresses, which the reader takes (they stay valid) as a different snapshot.
    let split = with_payload(&bytes, id(Section::NodeRuns), &[2, n / 2, n - n / 2]);
    assert!(decode(&split).map_or(true, |other| other != snap));
}

#[test]
fn node_keys_shared_by_two_nodes_are_corruption() {
    // The in-memory writer's keys are the node indices, stored as deltas of 1 (`02`
    // after zigzag): a delta of 0 gives the second node the first one's key.
    let snap = common::synthetic_web_heap(2_000, 9);
    let bytes = encode(&snap).expect("encode");
    let mut raw: Vec<u8> = vec![0, 0];
    raw.extend(std::iter::repeat_n(2u8, snap.n_nodes() - 2));
    let forged = with_payload(&bytes, id(Section::NodeKeys), &raw);
    match decode(&forged) {
        Err(FormatError::Corrupt { section, detail }) => {
            assert_eq!(section, Section::NodeKeys);
            assert!(detail.contains("two nodes have the key"), "{detail}");
        }
        other => panic!("expected corruption, got {other:?}"),
    }
}
