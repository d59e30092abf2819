//! The writer: one zstd-compressed section per column, streamed so that the uncompressed
//! form of a column never exists in memory as a whole, and compressed on two threads.

use std::io::{self, Write};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::columns;
use crate::columns::SnapshotCounts;
use crate::error::FormatError;
use crate::keys::{KeyedRoot, LocalNames};
use crate::layout::{
    encode_file_header, Section, SectionHeader, BOUNDS_SECTION_ID, CODEC_ZSTD, FILE_HEADER_LEN,
    FORMAT_VERSION, REQUIRED_SECTIONS, SECTION_HEADER_LEN,
};
use crate::model::{node_flags, Bound, Metadata, Root, Snapshot, StringTable, Types};
use crate::packed::PackedSnapshot;
use crate::parallel;
use crate::varint::{put_varint, MAX_VARINT_LEN};
use zstd::zstd_safe::{CCtx, CParameter};

/// zstd level for every section. The columns are already delta- and varint-encoded, so
/// zstd mostly entropy-codes them: on the 1M-node synthetic heap level 3 was 1.5% smaller
/// and slightly slower (docs/snapshot-format.md); level 1 keeps the capture's pause short.
pub const COMPRESSION_LEVEL: i32 = 1;

/// Uncompressed bytes gathered before each hand-over to zstd: big enough that the calls
/// into zstd are few, small enough to stay in cache.
const CHUNK_BYTES: usize = 128 * 1024;

/// Size of one section as written or as found in a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SectionSize {
    pub section: Section,
    /// Bytes on disk, section header included.
    pub stored_bytes: u64,
    /// Bytes once decompressed.
    pub raw_bytes: u64,
}

/// What [`crate::write_file`] and [`encode`] produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteStats {
    pub file_bytes: u64,
    pub n_nodes: u64,
    pub n_edges: u64,
    pub sections: Vec<SectionSize>,
}

impl WriteStats {
    /// File bytes per node, edges and everything else included (0 for no nodes).
    pub fn bytes_per_node(&self) -> f64 {
        if self.n_nodes == 0 {
            0.0
        } else {
            self.file_bytes as f64 / self.n_nodes as f64
        }
    }

    /// Sum of the sections' uncompressed sizes.
    pub fn raw_bytes(&self) -> u64 {
        self.sections.iter().map(|s| s.raw_bytes).sum()
    }
}

/// Encodes a snapshot into memory.
pub fn encode(snap: &Snapshot) -> Result<Vec<u8>, FormatError> {
    encode_any(snap)
}

/// Encodes a packed snapshot into memory.
pub fn encode_packed(snap: &PackedSnapshot) -> Result<Vec<u8>, FormatError> {
    encode_any(snap)
}

fn encode_any(snap: &impl Writable) -> Result<Vec<u8>, FormatError> {
    let mut out = Vec::new();
    encode_sections(snap)?
        .write_to(&mut out)
        .map_err(|e| FormatError::io("writing the snapshot", e))?;
    Ok(out)
}

/// Writes a snapshot to any writer. Prefer [`crate::write_file`] for files: it writes
/// atomically.
pub fn write_to<W: Write>(out: &mut W, snap: &Snapshot) -> Result<WriteStats, FormatError> {
    encode_sections(snap)?
        .write_to(out)
        .map_err(|e| FormatError::io("writing the snapshot", e))
}

/// Refuses snapshots that the reader would reject, and values the user did not opt into.
pub(crate) fn check_writable(snap: &Snapshot) -> Result<(), FormatError> {
    snap.validate()
        .map_err(|e| FormatError::InvalidSnapshot { detail: e.0 })?;
    // u32::MAX is the "none" sentinel of string ids (and of the reader's tables), so no
    // table may hold that many entries; the reader enforces the same limit.
    for (count, what) in [
        (snap.strings.len(), "strings"),
        (snap.types.len(), "types"),
        (snap.nodes.len(), "nodes"),
    ] {
        if count as u64 >= u64::from(u32::MAX) {
            return Err(FormatError::InvalidSnapshot {
                detail: format!("{count} {what} exceed the 2^32 - 1 limit of the format"),
            });
        }
    }
    if let Some(node) = first_value_without_opt_in(snap) {
        return Err(FormatError::InvalidSnapshot {
            detail: format!(
                "node {node} carries a string value but include_values is off; values are \
                 stored only when the user opts in"
            ),
        });
    }
    Ok(())
}

/// [`check_writable`] for a packed snapshot, in two parts: 0 the nodes and tables, 1 the
/// edges.
pub(crate) fn check_packed_writable(snap: &PackedSnapshot, part: usize) -> Result<(), FormatError> {
    let invalid = |detail| FormatError::InvalidSnapshot { detail };
    if part != 0 {
        return snap.validate_edges().map_err(invalid);
    }
    snap.validate_nodes().map_err(invalid)?;
    let counts = snap.counts();
    for (count, what) in [
        (counts.n_strings, "strings"),
        (counts.n_types, "types"),
        (counts.n_nodes, "nodes"),
    ] {
        if count >= u64::from(u32::MAX) {
            return Err(FormatError::InvalidSnapshot {
                detail: format!("{count} {what} exceed the 2^32 - 1 limit of the format"),
            });
        }
    }
    Ok(())
}

/// The first node flagged `HAS_VALUE` in a snapshot that did not opt into values.
pub(crate) fn first_value_without_opt_in(snap: &Snapshot) -> Option<usize> {
    if snap.metadata.include_values {
        return None;
    }
    snap.nodes
        .flags
        .iter()
        .position(|f| f & node_flags::HAS_VALUE != 0)
}

/// What the writer needs from a snapshot, whichever form it is held in.
pub(crate) trait Writable: Sync {
    /// Independent parts of [`Writable::check`], run as jobs beside the compression.
    const CHECK_PARTS: usize = 1;
    /// Refuses what the reader would reject, and values the user did not opt into: part
    /// `part` (below `CHECK_PARTS`) of the whole check.
    fn check(&self, part: usize) -> Result<(), FormatError>;
    fn counts(&self) -> SnapshotCounts;
    fn tables(&self) -> Tables<'_>;
    /// Parts a column's payload is compressed in, side by side, as zstd frames that
    /// follow each other in the section.
    fn column_parts(&self, _section: Section) -> usize {
        1
    }
    /// Part `part` of the payload of one per-node or per-edge section (address to
    /// labels): the parts in order make the payload.
    fn column(&self, section: Section, part: usize, sink: &mut ColumnSink<'_>) -> io::Result<()>;
}

/// The parts both forms hold alike.
pub(crate) struct Tables<'a> {
    metadata: &'a Metadata,
    strings: &'a StringTable,
    types: &'a Types,
    /// Each node run's length (see the node runs section).
    runs: Vec<u64>,
    roots: Roots<'a>,
    /// Whether the reader is to add the external roots (they are not in `roots`).
    derive_external_roots: bool,
    local_names: &'a LocalNames,
    bounds: &'a [Bound],
}

/// Roots by node, whose index is its key, or by key.
#[derive(Clone, Copy)]
enum Roots<'a> {
    ByNode(&'a [Root]),
    ByKey(&'a [KeyedRoot]),
}

impl Roots<'_> {
    fn keyed(self) -> Vec<KeyedRoot> {
        match self {
            Roots::ByNode(roots) => roots
                .iter()
                .map(|r| KeyedRoot {
                    kind: r.kind,
                    key: u64::from(r.node),
                    name: r.name,
                    extra: r.extra,
                })
                .collect(),
            Roots::ByKey(roots) => roots.to_vec(),
        }
    }
}

/// The in-memory form has no local names left to give: its labels are final.
static NO_LOCAL_NAMES: LocalNames = LocalNames {
    lists: Vec::new(),
    holders: Vec::new(),
};

impl Writable for Snapshot {
    fn check(&self, _part: usize) -> Result<(), FormatError> {
        check_writable(self)
    }
    fn counts(&self) -> SnapshotCounts {
        SnapshotCounts::of(self)
    }
    fn tables(&self) -> Tables<'_> {
        Tables {
            metadata: &self.metadata,
            strings: &self.strings,
            types: &self.types,
            runs: columns::single_run(self.nodes.len() as u64),
            roots: Roots::ByNode(&self.roots),
            derive_external_roots: false,
            local_names: &NO_LOCAL_NAMES,
            bounds: &self.bounds,
        }
    }
    fn column(&self, section: Section, _part: usize, s: &mut ColumnSink<'_>) -> io::Result<()> {
        let nodes = &self.nodes;
        let edges = &self.edges;
        match section {
            Section::NodeAddress => columns::encode_addresses(&nodes.address, s),
            Section::NodeType => s.varints(nodes.type_idx.iter().map(|t| u64::from(t.0))),
            Section::NodeSize => s.varints(nodes.size.iter().copied()),
            Section::NodeFlags => s.bytes(&nodes.flags),
            Section::NodeRefcount => {
                s.varints(nodes.refcount.iter().map(|r| columns::refcount_code(*r)))
            }
            Section::NodeName => s.varints(nodes.name.iter().map(|n| columns::str_id_code(*n))),
            Section::NodeLength => s.varints(nodes.length.iter().copied()),
            Section::EdgeDegrees => s.varints(edges.offsets.windows(2).map(|w| w[1] - w[0])),
            // Node indices serve as keys: the reader's index of them is the identity.
            Section::NodeKeys => columns::encode_index_keys(nodes.len(), s),
            Section::EdgeTargets => {
                columns::encode_index_targets(&edges.offsets, &nodes.type_idx, &edges.targets, s)
            }
            Section::EdgeLabels => s.varints(
                edges
                    .label_kinds
                    .iter()
                    .zip(&edges.label_values)
                    .map(|(kind, value)| columns::label_code(*kind, *value)),
            ),
            _ => Ok(()),
        }
    }
}

impl Writable for PackedSnapshot {
    /// Nodes and tables; edges.
    const CHECK_PARTS: usize = 2;
    fn check(&self, part: usize) -> Result<(), FormatError> {
        check_packed_writable(self, part)
    }
    fn counts(&self) -> SnapshotCounts {
        PackedSnapshot::counts(self)
    }
    fn tables(&self) -> Tables<'_> {
        Tables {
            metadata: &self.metadata,
            strings: &self.strings,
            types: &self.types,
            runs: self.run_lengths(),
            roots: Roots::ByKey(&self.roots),
            derive_external_roots: self.derive_external_roots,
            local_names: &self.local_names,
            bounds: &self.bounds,
        }
    }
    fn column_parts(&self, section: Section) -> usize {
        PackedSnapshot::column_parts(self, section)
    }
    fn column(&self, section: Section, part: usize, sink: &mut ColumnSink<'_>) -> io::Result<()> {
        PackedSnapshot::column_part(self, section, part, sink)
    }
}

/// A snapshot's sections, compressed and checksummed in memory (about a byte per node),
/// ready to be written in the layout's order.
pub(crate) struct EncodedSections {
    sections: Vec<EncodedSection>,
    counts: SnapshotCounts,
}

struct EncodedSection {
    header: SectionHeader,
    section: Section,
    payload: Vec<u8>,
}

/// Checks `snap` and compresses each of its sections, on two threads: the sections are
/// independent, and on a capture this is most of what happens after the walk.
pub(crate) fn encode_sections<W: Writable>(snap: &W) -> Result<EncodedSections, FormatError> {
    let counts = snap.counts();
    let tables = snap.tables();
    let mut sections: Vec<Section> = REQUIRED_SECTIONS.to_vec();
    if !tables.bounds.is_empty() {
        sections.push(Section::Optional(BOUNDS_SECTION_ID));
    }
    // The check's parts run as jobs beside the compression (nothing is written before
    // all end); the heaviest jobs go first, so that the last to start is a short one.
    let mut jobs: Vec<Job> = (0..W::CHECK_PARTS).map(Job::Check).collect();
    for (i, &section) in sections.iter().enumerate() {
        jobs.extend((0..snap.column_parts(section)).map(|part| Job::Compress(i, part)));
    }
    jobs.sort_by_key(|job| match *job {
        Job::Compress(i, _) => section_weight(sections[i]),
        Job::Check(_) => CHECK_WEIGHT,
    });
    let next_job = AtomicUsize::new(0);
    let work = || -> Result<Vec<(SectionPart, EncodedSection)>, FormatError> {
        let mut context = None;
        let mut done = Vec::new();
        loop {
            let job = match jobs.get(next_job.fetch_add(1, Ordering::Relaxed)) {
                None => return Ok(done),
                Some(&Job::Check(part)) => {
                    if let Err(refused) = snap.check(part) {
                        // Nothing will be written: no job is handed out any more.
                        next_job.store(jobs.len(), Ordering::Relaxed);
                        return Err(refused);
                    }
                    continue;
                }
                Some(&Job::Compress(job, part)) => (job, part),
            };
            let context = match &mut context {
                Some(context) => context,
                empty => empty.insert(
                    new_compression_context()
                        .map_err(|e| FormatError::io("compressing the snapshot", e))?,
                ),
            };
            let which = sections[job.0];
            let section = compress_section(context, which, &mut |s| match which {
                Section::Metadata => s.bytes(&columns::encode_metadata(counts, tables.metadata)),
                Section::Strings => columns::encode_strings(tables.strings, s),
                Section::Types => columns::encode_types(tables.types, s),
                Section::NodeRuns => columns::encode_runs(&tables.runs, s),
                Section::Roots => {
                    columns::encode_roots(&tables.roots.keyed(), tables.derive_external_roots, s)
                }
                Section::LocalNames => columns::encode_local_names(tables.local_names, s),
                Section::Optional(BOUNDS_SECTION_ID) => columns::encode_bounds(tables.bounds, s),
                column => snap.column(column, job.1, s),
            })
            .map_err(|e| FormatError::io("compressing the snapshot", e))?;
            done.push((job, section));
        }
    };
    let (first, second) = parallel::join(work, work);
    let mut parts: Vec<(SectionPart, EncodedSection)> = first?;
    parts.extend(second?);
    parts.sort_unstable_by_key(|&(job, _)| job);
    let mut encoded: Vec<EncodedSection> = Vec::with_capacity(sections.len());
    for ((_, part), section) in parts {
        match encoded.last_mut() {
            Some(previous) if part > 0 => previous.append(section),
            _ => encoded.push(section),
        }
    }
    debug_assert_eq!(encoded.len(), sections.len());
    Ok(EncodedSections {
        sections: encoded,
        counts,
    })
}

impl EncodedSection {
    /// Appends the next part of the same section: zstd frames read one after the other.
    fn append(&mut self, next: EncodedSection) {
        self.payload.extend_from_slice(&next.payload);
        self.header.stored_len += next.header.stored_len;
        self.header.raw_len += next.header.raw_len;
        self.header.payload_crc = crc32fast::hash(&self.payload);
    }
}

/// A part of the check, or the compression of one part of one section (an index into
/// the sections, and the part).
#[derive(Clone, Copy)]
enum Job {
    Check(usize),
    Compress(usize, usize),
}

/// (index into the sections, part).
type SectionPart = (usize, usize);

/// Rank of the check's parts among the sections: right after the edge targets, so that a
/// refused snapshot stops the other compressions early (a part takes a few milliseconds).
const CHECK_WEIGHT: u8 = 1;

/// Rank of a section in the compression order: the per-edge columns are the largest.
fn section_weight(section: Section) -> u8 {
    match section {
        Section::EdgeTargets => 0,
        Section::EdgeLabels => 1,
        Section::NodeAddress => 2,
        Section::Metadata
        | Section::Strings
        | Section::Types
        | Section::NodeRuns
        | Section::Roots => 4,
        Section::Optional(_) => 5,
        _ => 3,
    }
}

impl EncodedSections {
    pub(crate) fn write_to<W: Write>(&self, out: &mut W) -> io::Result<WriteStats> {
        out.write_all(&encode_file_header(FORMAT_VERSION))?;
        let mut file_bytes = FILE_HEADER_LEN as u64;
        let mut sizes = Vec::with_capacity(self.sections.len());
        for section in &self.sections {
            out.write_all(&section.header.encode())?;
            out.write_all(&section.payload)?;
            let stored_bytes = SECTION_HEADER_LEN as u64 + section.header.stored_len;
            file_bytes += stored_bytes;
            sizes.push(SectionSize {
                section: section.section,
                stored_bytes,
                raw_bytes: section.header.raw_len,
            });
        }
        out.write_all(&SectionHeader::end_marker().encode())?;
        file_bytes += SECTION_HEADER_LEN as u64;
        out.flush()?;
        Ok(WriteStats {
            file_bytes,
            n_nodes: self.counts.n_nodes,
            n_edges: self.counts.n_edges,
            sections: sizes,
        })
    }
}

/// One zstd context serves every section: creating one per section costs more than
/// compressing a small section.
fn new_compression_context() -> io::Result<CCtx<'static>> {
    let mut context = CCtx::try_create().ok_or_else(|| {
        io::Error::new(io::ErrorKind::OutOfMemory, "cannot allocate a zstd context")
    })?;
    context
        .set_parameter(CParameter::CompressionLevel(COMPRESSION_LEVEL))
        .map_err(|code| {
            io::Error::other(format!(
                "zstd refused compression level {COMPRESSION_LEVEL}: {}",
                zstd::zstd_safe::get_error_name(code)
            ))
        })?;
    Ok(context)
}

/// Streams one section's payload through zstd into memory, with the header that
/// describes it.
fn compress_section(
    context: &mut CCtx<'static>,
    section: Section,
    fill: &mut dyn FnMut(&mut ColumnSink<'_>) -> io::Result<()>,
) -> io::Result<EncodedSection> {
    let mut counter = ChecksummingWriter {
        inner: Vec::new(),
        hasher: crc32fast::Hasher::new(),
        written: 0,
    };
    let raw_len = {
        let encoder =
            zstd::stream::write::Encoder::with_context(&mut counter as &mut dyn Write, context);
        let mut sink = ColumnSink {
            encoder,
            chunk: Vec::with_capacity(CHUNK_BYTES + MAX_VARINT_LEN),
            raw_len: 0,
        };
        fill(&mut sink)?;
        sink.flush_chunk()?;
        let ColumnSink {
            encoder, raw_len, ..
        } = sink;
        encoder.finish()?;
        raw_len
    };
    let header = SectionHeader {
        id: section.id().unwrap_or_default(),
        codec: CODEC_ZSTD,
        payload_crc: counter.hasher.finalize(),
        stored_len: counter.written,
        raw_len,
    };
    Ok(EncodedSection {
        header,
        section,
        payload: counter.inner,
    })
}

/// Passes compressed bytes through while counting them and computing their CRC32.
struct ChecksummingWriter<W> {
    inner: W,
    hasher: crc32fast::Hasher,
    written: u64,
}

impl<W: Write> Write for ChecksummingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Receives a section's uncompressed bytes and feeds them to zstd in chunks.
pub(crate) struct ColumnSink<'a> {
    encoder: zstd::stream::write::Encoder<'a, &'a mut dyn Write>,
    chunk: Vec<u8>,
    raw_len: u64,
}

impl ColumnSink<'_> {
    #[inline]
    pub fn varint(&mut self, value: u64) -> io::Result<()> {
        put_varint(&mut self.chunk, value);
        if self.chunk.len() >= CHUNK_BYTES {
            self.flush_chunk()?;
        }
        Ok(())
    }

    pub fn varints(&mut self, values: impl Iterator<Item = u64>) -> io::Result<()> {
        for value in values {
            self.varint(value)?;
        }
        Ok(())
    }

    pub fn byte(&mut self, byte: u8) -> io::Result<()> {
        self.chunk.push(byte);
        if self.chunk.len() >= CHUNK_BYTES {
            self.flush_chunk()?;
        }
        Ok(())
    }

    pub fn bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.chunk.len() + bytes.len() > CHUNK_BYTES {
            self.flush_chunk()?;
        }
        if bytes.len() >= CHUNK_BYTES {
            self.raw_len += bytes.len() as u64;
            return self.encoder.write_all(bytes);
        }
        self.chunk.extend_from_slice(bytes);
        Ok(())
    }

    fn flush_chunk(&mut self) -> io::Result<()> {
        self.raw_len += self.chunk.len() as u64;
        self.encoder.write_all(&self.chunk)?;
        self.chunk.clear();
        Ok(())
    }
}
