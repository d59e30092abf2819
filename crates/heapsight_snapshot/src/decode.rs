//! The validating reader. Every length in the file is checked against the bytes that are
//! really there before anything is allocated, every payload's CRC is checked before it is
//! decompressed, and the decoded snapshot must pass `Snapshot::validate`.

use std::io::{self, Read, Seek, SeekFrom};

use crate::columns::{self, SnapshotCounts, TargetSpace};
use crate::encode::{first_value_without_opt_in, SectionSize};
use crate::error::{ForeignKind, FormatError};
use crate::keys::{external_roots, KeyError, KeyIndex, LocalNames};
use crate::layout::{
    required_sections, Section, SectionHeader, BOUNDS_SECTION_ID, CODEC_ZSTD, FILE_HEADER_LEN,
    FORMAT_VERSION, MAGIC, MAX_WINDOW_LOG, SECTION_HEADER_LEN,
};
use crate::model::{Bound, Edges, Metadata, NodeIdx, Nodes, Snapshot};

/// What `read_metadata` learns without decoding the heap itself.
#[derive(Clone, Debug, PartialEq)]
pub struct SnapshotInfo {
    pub format_version: u32,
    pub file_bytes: u64,
    pub metadata: Metadata,
    pub counts: SnapshotCounts,
    /// Every section in file order (end marker excluded), with its sizes.
    pub sections: Vec<SectionSize>,
}

/// Decodes a whole snapshot held in memory.
pub fn decode(bytes: &[u8]) -> Result<Snapshot, FormatError> {
    let mut source = Source::new(io::Cursor::new(bytes), bytes.len() as u64, "the snapshot");
    decode_from(&mut source)
}

/// A forward reader over the file that knows how many bytes are left, so that lengths
/// read from the file can be checked before they are trusted.
pub(crate) struct Source<R> {
    inner: R,
    remaining: u64,
    /// For I/O error messages: "reading /tmp/app.hsnap".
    what: String,
    /// The current section's stored and decompressed bytes; reused from section to
    /// section so that each costs no fresh allocation (and no fresh page faults).
    stored: Vec<u8>,
    raw: Vec<u8>,
    /// One zstd context for all sections, created on first use.
    zstd_context: Option<zstd::zstd_safe::DCtx<'static>>,
}

impl<R: Read + Seek> Source<R> {
    pub fn new(inner: R, len: u64, what: impl Into<String>) -> Self {
        Source {
            inner,
            remaining: len,
            what: what.into(),
            stored: Vec::new(),
            raw: Vec::new(),
            zstd_context: None,
        }
    }

    fn io_error(&self, section: Section, e: io::Error) -> FormatError {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            // The file shrank while being read: it was cut short.
            FormatError::Truncated { section }
        } else {
            FormatError::io(format!("reading {}", self.what), e)
        }
    }

    fn read_exact(&mut self, buf: &mut [u8], section: Section) -> Result<(), FormatError> {
        self.inner
            .read_exact(buf)
            .map_err(|e| self.io_error(section, e))?;
        self.remaining -= buf.len() as u64;
        Ok(())
    }

    /// Checks magic, header checksum and version; returns the version.
    pub fn file_header(&mut self) -> Result<u32, FormatError> {
        let available = self.remaining.min(FILE_HEADER_LEN as u64) as usize;
        let mut header = [0u8; FILE_HEADER_LEN];
        self.read_exact(&mut header[..available], Section::FileHeader)?;
        let header_read = &header[..available];
        if available < FILE_HEADER_LEN {
            let magic_part = available.min(MAGIC.len());
            if available > 0 && header_read[..magic_part] == MAGIC[..magic_part] {
                return Err(FormatError::Truncated {
                    section: Section::FileHeader,
                });
            }
            return Err(FormatError::NotASnapshot {
                looks_like: ForeignKind::sniff(header_read),
            });
        }
        let stored_crc = u32::from_le_bytes([header[12], header[13], header[14], header[15]]);
        if header[..8] != MAGIC {
            let mut with_real_magic = header;
            with_real_magic[..8].copy_from_slice(&MAGIC);
            // Version and checksum agree with the real magic: only the magic was damaged.
            if crc32fast::hash(&with_real_magic[..12]) == stored_crc {
                return Err(FormatError::corrupt(
                    Section::FileHeader,
                    "the magic bytes are damaged",
                ));
            }
            return Err(FormatError::NotASnapshot {
                looks_like: ForeignKind::sniff(&header),
            });
        }
        if crc32fast::hash(&header[..12]) != stored_crc {
            return Err(FormatError::corrupt(
                Section::FileHeader,
                "the header checksum does not match",
            ));
        }
        let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
        if version == 0 || version > FORMAT_VERSION {
            return Err(FormatError::UnsupportedVersion {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        Ok(version)
    }

    /// The next section header; `expected` names the place in error messages.
    fn section_header(&mut self, expected: Section) -> Result<SectionHeader, FormatError> {
        if self.remaining < SECTION_HEADER_LEN as u64 {
            return Err(FormatError::Truncated { section: expected });
        }
        let mut bytes = [0u8; SECTION_HEADER_LEN];
        self.read_exact(&mut bytes, expected)?;
        let header = SectionHeader::decode(&bytes)
            .map_err(|detail| FormatError::corrupt(expected, detail))?;
        if header.stored_len > self.remaining {
            let section = Section::from_id(header.id).unwrap_or(expected);
            return Err(FormatError::Truncated { section });
        }
        Ok(header)
    }

    /// The next required section's header, after skipping (and checking) optional ones.
    fn required_header(&mut self, expected: Section) -> Result<SectionHeader, FormatError> {
        loop {
            let header = self.section_header(expected)?;
            match Section::from_id(header.id) {
                Some(found) if found == expected => return Ok(header),
                Some(Section::Optional(id)) => {
                    self.skip_optional(&header, Section::Optional(id))?
                }
                Some(Section::End) => {
                    return Err(FormatError::corrupt(
                        expected,
                        "the end marker comes before this section",
                    ))
                }
                Some(found) => {
                    return Err(FormatError::corrupt(
                        expected,
                        format!("found section '{found}' where this one belongs"),
                    ))
                }
                None => {
                    return Err(FormatError::corrupt(
                        expected,
                        format!(
                            "found unknown section id {:#06x} where this one belongs",
                            header.id
                        ),
                    ))
                }
            }
        }
    }

    /// Reads, checks and decompresses the payload of the next required section. The
    /// returned bytes live in a buffer reused by the next section.
    pub fn required_payload(&mut self, section: Section) -> Result<&[u8], FormatError> {
        let header = self.required_header(section)?;
        self.payload(&header, section)
    }

    fn payload(&mut self, header: &SectionHeader, section: Section) -> Result<&[u8], FormatError> {
        if header.codec != CODEC_ZSTD {
            return Err(FormatError::corrupt(
                section,
                format!("unknown compression codec {}", header.codec),
            ));
        }
        self.stored_payload(header, section)?;
        let context = match &mut self.zstd_context {
            Some(context) => context,
            empty => empty.insert(new_decompression_context()?),
        };
        decompress_into(
            context,
            &self.stored,
            header.raw_len,
            section,
            &mut self.raw,
        )?;
        Ok(&self.raw)
    }

    /// Reads the stored bytes of a section whose header was just read into `self.stored`
    /// and checks their CRC. Reading (rather than pre-sizing from the header) means the
    /// buffer only grows with bytes that are really there.
    fn stored_payload(
        &mut self,
        header: &SectionHeader,
        section: Section,
    ) -> Result<(), FormatError> {
        self.stored.clear();
        let read = (&mut self.inner)
            .take(header.stored_len)
            .read_to_end(&mut self.stored)
            .map_err(|e| self.io_error(section, e))?;
        self.remaining = self.remaining.saturating_sub(read as u64);
        if (read as u64) < header.stored_len {
            return Err(FormatError::Truncated { section });
        }
        let crc = crc32fast::hash(&self.stored);
        if crc != header.payload_crc {
            return Err(FormatError::corrupt(
                section,
                format!(
                    "checksum mismatch (stored {:#010x}, computed {crc:#010x})",
                    header.payload_crc
                ),
            ));
        }
        Ok(())
    }

    fn skip_optional(
        &mut self,
        header: &SectionHeader,
        section: Section,
    ) -> Result<(), FormatError> {
        // Unknown content is not decompressed, but its checksum still guards the file.
        self.stored_payload(header, section)
    }

    /// Skips a payload without reading it (for `read_metadata`).
    fn seek_past(&mut self, header: &SectionHeader, section: Section) -> Result<(), FormatError> {
        let len =
            i64::try_from(header.stored_len).map_err(|_| FormatError::Truncated { section })?;
        self.inner
            .seek(SeekFrom::Current(len))
            .map_err(|e| self.io_error(section, e))?;
        self.remaining -= header.stored_len;
        Ok(())
    }

    /// After the last required section: optional sections (the container bounds are
    /// decoded, others skipped), the end marker, then nothing.
    pub fn end(&mut self, n_nodes: u64) -> Result<Vec<Bound>, FormatError> {
        let mut bounds = Vec::new();
        let header = loop {
            let header = self.section_header(Section::End)?;
            match Section::from_id(header.id) {
                Some(Section::End) => break header,
                Some(Section::Optional(BOUNDS_SECTION_ID)) => {
                    let section = Section::Optional(BOUNDS_SECTION_ID);
                    bounds = columns::decode_bounds(self.payload(&header, section)?, n_nodes)?;
                }
                Some(Section::Optional(id)) => {
                    self.skip_optional(&header, Section::Optional(id))?
                }
                _ => {
                    return Err(FormatError::corrupt(
                        Section::End,
                        format!("found section id {:#06x} after the last section", header.id),
                    ))
                }
            }
        };
        self.check_end_marker(&header)?;
        Ok(bounds)
    }

    fn check_end_marker(&self, header: &SectionHeader) -> Result<(), FormatError> {
        if *header != SectionHeader::end_marker() {
            return Err(FormatError::corrupt(
                Section::End,
                "the end marker has non-zero fields",
            ));
        }
        if self.remaining != 0 {
            return Err(FormatError::corrupt(
                Section::End,
                format!("{} unexpected bytes follow the end marker", self.remaining),
            ));
        }
        Ok(())
    }
}

/// Decompresses a payload that must expand to exactly `raw_len` bytes. The output buffer
/// grows with what zstd really produces, so a forged `raw_len` allocates nothing.
fn new_decompression_context() -> Result<zstd::zstd_safe::DCtx<'static>, FormatError> {
    let failed = |what: &str| {
        FormatError::io(
            "preparing to decompress",
            io::Error::new(io::ErrorKind::OutOfMemory, what.to_owned()),
        )
    };
    let mut context = zstd::zstd_safe::DCtx::try_create()
        .ok_or_else(|| failed("cannot allocate a zstd context"))?;
    context
        .set_parameter(zstd::zstd_safe::DParameter::WindowLogMax(MAX_WINDOW_LOG))
        .map_err(|_| failed("cannot limit the zstd window"))?;
    Ok(context)
}

fn decompress_into(
    context: &mut zstd::zstd_safe::DCtx<'static>,
    stored: &[u8],
    raw_len: u64,
    section: Section,
    raw: &mut Vec<u8>,
) -> Result<(), FormatError> {
    let invalid =
        |e: io::Error| FormatError::corrupt(section, format!("invalid compressed data: {e}"));
    let decoder = zstd::stream::read::Decoder::with_context(stored, context);
    // Columns compress 2-20x; reserving up to 32x the stored size avoids regrowth in the
    // common case without trusting raw_len blindly.
    let reserve = raw_len.min(stored.len() as u64 * 32 + 4096);
    raw.clear();
    raw.reserve(usize::try_from(reserve).unwrap_or(0));
    let limit = raw_len.saturating_add(1);
    decoder.take(limit).read_to_end(raw).map_err(invalid)?;
    if raw.len() as u64 != raw_len {
        return Err(FormatError::corrupt(
            section,
            format!(
                "decompressed to {}{} bytes, the header says {raw_len}",
                raw.len(),
                if raw.len() as u64 > raw_len {
                    " or more"
                } else {
                    ""
                }
            ),
        ));
    }
    Ok(())
}

pub(crate) fn decode_from<R: Read + Seek>(src: &mut Source<R>) -> Result<Snapshot, FormatError> {
    let version = src.file_header()?;
    let (metadata, counts) = columns::decode_metadata(src.required_payload(Section::Metadata)?)?;
    let strings =
        columns::decode_strings(src.required_payload(Section::Strings)?, counts.n_strings)?;
    let types = columns::decode_types(src.required_payload(Section::Types)?, counts.n_types)?;
    let n = counts.n_nodes;
    let runs = if version >= 3 {
        columns::decode_runs(src.required_payload(Section::NodeRuns)?, n)?
    } else {
        columns::single_run(n)
    };
    let nodes = Nodes {
        address: columns::decode_addresses(src.required_payload(Section::NodeAddress)?, n, &runs)?,
        type_idx: columns::decode_node_types(src.required_payload(Section::NodeType)?, n)?,
        size: columns::decode_sizes(src.required_payload(Section::NodeSize)?, n)?,
        flags: columns::decode_flags(src.required_payload(Section::NodeFlags)?, n)?,
        refcount: columns::decode_refcounts(src.required_payload(Section::NodeRefcount)?, n)?,
        name: columns::decode_names(src.required_payload(Section::NodeName)?, n)?,
        length: columns::decode_lengths(src.required_payload(Section::NodeLength)?, n)?,
    };
    let keys = if version >= 2 {
        let keys = columns::decode_node_keys(src.required_payload(Section::NodeKeys)?, n, &runs)?;
        let index = index_keys(&keys)?;
        Some((keys, index))
    } else {
        None
    };
    let offsets = columns::decode_offsets(
        src.required_payload(Section::EdgeDegrees)?,
        n,
        counts.n_edges,
    )?;
    let space = match &keys {
        Some((keys, index)) => TargetSpace::Keys { keys, index },
        None => TargetSpace::Indices(n),
    };
    let targets = columns::decode_targets(
        src.required_payload(Section::EdgeTargets)?,
        &offsets,
        &nodes.type_idx,
        types.len(),
        &runs,
        &space,
    )?;
    let (mut label_kinds, mut label_values) =
        columns::decode_labels(src.required_payload(Section::EdgeLabels)?, counts.n_edges)?;
    let (mut roots, derive_external) = columns::decode_roots(
        src.required_payload(Section::Roots)?,
        counts.n_roots,
        version,
        &space,
    )?;
    if version >= 2 {
        let names = columns::decode_local_names(
            src.required_payload(Section::LocalNames)?,
            counts.n_strings,
        )?;
        let holders = resolve_holders(&names, &space)?;
        names.apply(
            holders.into_iter(),
            &offsets,
            &mut label_kinds,
            &mut label_values,
        );
    }
    // The index is a few bytes per node: freed before the external roots are counted.
    drop(keys);
    if derive_external {
        roots.extend(external_roots(&nodes, &targets));
    }
    let bounds = src.end(n)?;
    let snapshot = Snapshot {
        metadata,
        strings,
        types,
        nodes,
        edges: Edges {
            offsets,
            targets,
            label_kinds,
            label_values,
        },
        roots,
        bounds,
    };
    snapshot
        .validate()
        .map_err(|e| FormatError::corrupt(Section::CrossReferences, e.0))?;
    if let Some(node) = first_value_without_opt_in(&snapshot) {
        return Err(FormatError::corrupt(
            Section::CrossReferences,
            format!("node {node} carries a value although include_values is off"),
        ));
    }
    Ok(snapshot)
}

/// Header, metadata, and the section headers only: payloads other than the metadata are
/// skipped by seeking, so this costs a few small reads whatever the file size.
pub(crate) fn read_info<R: Read + Seek>(
    src: &mut Source<R>,
    file_bytes: u64,
) -> Result<SnapshotInfo, FormatError> {
    let format_version = src.file_header()?;
    let metadata_header = src.required_header(Section::Metadata)?;
    let (metadata, counts) =
        columns::decode_metadata(src.payload(&metadata_header, Section::Metadata)?)?;
    let size = |header: &SectionHeader, section: Section| SectionSize {
        section,
        stored_bytes: SECTION_HEADER_LEN as u64 + header.stored_len,
        raw_bytes: header.raw_len,
    };
    let mut sections = vec![size(&metadata_header, Section::Metadata)];
    let mut still_required = required_sections(format_version).skip(1);
    let mut expected = still_required.next();
    loop {
        let place = expected.unwrap_or(Section::End);
        let header = src.section_header(place)?;
        let found = Section::from_id(header.id);
        match found {
            Some(Section::End) if expected.is_none() => {
                src.check_end_marker(&header)?;
                break;
            }
            Some(Section::Optional(_)) => {}
            Some(found) if Some(found) == expected => expected = still_required.next(),
            _ => {
                return Err(FormatError::corrupt(
                    place,
                    format!("found section id {:#06x} where this one belongs", header.id),
                ))
            }
        }
        let section = found.unwrap_or(place);
        if !matches!(section, Section::Optional(_)) && header.codec != CODEC_ZSTD {
            return Err(FormatError::corrupt(
                section,
                format!("unknown compression codec {}", header.codec),
            ));
        }
        src.seek_past(&header, section)?;
        sections.push(size(&header, section));
    }
    Ok(SnapshotInfo {
        format_version,
        file_bytes,
        metadata,
        counts,
        sections,
    })
}

/// Indexes the nodes' keys; a file whose keys cannot be indexed is corrupt.
pub(crate) fn index_keys(keys: &[u64]) -> Result<KeyIndex, FormatError> {
    KeyIndex::new(keys).map_err(|e| {
        let detail = match e {
            KeyError::Duplicate(key) => format!("two nodes have the key {key:#x}"),
            KeyError::OutOfRange(key) => format!(
                "the key {key:#x} lies beyond what {} nodes can use",
                keys.len()
            ),
        };
        FormatError::corrupt(Section::NodeKeys, detail)
    })
}

/// The node of each holder of local names, in order; a holder that is no node's key
/// makes the file corrupt.
pub(crate) fn resolve_holders(
    names: &LocalNames,
    space: &TargetSpace<'_>,
) -> Result<Vec<(NodeIdx, u32)>, FormatError> {
    names
        .holders
        .iter()
        .map(|&(key, list)| space.node(key).map(|node| (node, list)))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| {
            FormatError::corrupt(Section::LocalNames, "a holder of names is no node's key")
        })
}
