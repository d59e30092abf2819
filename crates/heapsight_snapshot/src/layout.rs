//! Byte layout of a `.hsnap` file: magic, file header, section ids and section headers.
//! docs/snapshot-format.md is the specification; this module is its single source of
//! truth in code.

/// First bytes of every snapshot. The non-ASCII first byte catches transfers that strip
/// the high bit and makes tools treat the file as binary; `\r\n` catches line-ending
/// conversion in either direction (CRLF→LF drops the `\r`, LF→CRLF adds one).
pub const MAGIC: [u8; 8] = *b"\x89HSNAP\r\n";

/// The format version this crate writes, and the newest it reads.
pub const FORMAT_VERSION: u32 = 3;

/// Magic, version (u32 LE) and a CRC32 of those 12 bytes (u32 LE). Frozen across format
/// versions so that any reader can tell "newer version" from "corrupt".
pub const FILE_HEADER_LEN: usize = 16;

/// See [`SectionHeader`].
pub const SECTION_HEADER_LEN: usize = 28;

/// Section ids with this bit set (other than [`END_ID`]) are optional: a reader that does
/// not know one verifies its checksum and skips it. New data can thus be added without
/// locking out older readers.
pub const OPTIONAL_SECTION_BIT: u16 = 0x8000;

/// The optional section listing containers of known capacity (`Snapshot::bounds`).
pub const BOUNDS_SECTION_ID: u16 = 0x8001;

/// The end marker: a section header with this id, no payload, and nothing after it.
pub const END_ID: u16 = 0xFFFF;

/// Payload compression of a section.
pub const CODEC_NONE: u8 = 0;
pub const CODEC_ZSTD: u8 = 1;

/// Largest zstd window the reader accepts (8 MiB). The writer's levels use at most 2 MiB;
/// the cap stops a crafted frame from making the decoder allocate up to its default limit.
pub const MAX_WINDOW_LOG: u32 = 23;

/// A place in the file, named in error messages so the user knows what broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Section {
    FileHeader,
    Metadata,
    Strings,
    Types,
    NodeRuns,
    NodeAddress,
    NodeType,
    NodeSize,
    NodeFlags,
    NodeRefcount,
    NodeName,
    NodeLength,
    NodeKeys,
    EdgeDegrees,
    EdgeTargets,
    EdgeLabels,
    Roots,
    LocalNames,
    End,
    /// An optional section this reader does not know, by id.
    Optional(u16),
    /// Checks that span sections (indices in range, counts agreeing).
    CrossReferences,
}

/// The required sections of the newest format version, in file order.
pub const REQUIRED_SECTIONS: [Section; 17] = [
    Section::Metadata,
    Section::Strings,
    Section::Types,
    Section::NodeRuns,
    Section::NodeAddress,
    Section::NodeType,
    Section::NodeSize,
    Section::NodeFlags,
    Section::NodeRefcount,
    Section::NodeName,
    Section::NodeLength,
    Section::NodeKeys,
    Section::EdgeDegrees,
    Section::EdgeTargets,
    Section::EdgeLabels,
    Section::Roots,
    Section::LocalNames,
];

/// The required sections of a file of format `version`, in file order: version 1 has no
/// node keys (its edge targets and roots are node indices) and no local names; versions 1
/// and 2 have no node runs (their nodes are one run).
pub fn required_sections(version: u32) -> impl Iterator<Item = Section> {
    REQUIRED_SECTIONS.into_iter().filter(move |s| match s {
        Section::NodeKeys | Section::LocalNames => version >= 2,
        Section::NodeRuns => version >= 3,
        _ => true,
    })
}

impl Section {
    /// The id stored in the section header; `None` for places that are not sections.
    pub fn id(self) -> Option<u16> {
        Some(match self {
            Section::Metadata => 0x0001,
            Section::Strings => 0x0002,
            Section::Types => 0x0003,
            Section::NodeRuns => 0x0004,
            Section::NodeAddress => 0x0010,
            Section::NodeType => 0x0011,
            Section::NodeSize => 0x0012,
            Section::NodeFlags => 0x0013,
            Section::NodeRefcount => 0x0014,
            Section::NodeName => 0x0015,
            Section::NodeLength => 0x0016,
            Section::NodeKeys => 0x0017,
            Section::EdgeDegrees => 0x0020,
            Section::EdgeTargets => 0x0021,
            Section::EdgeLabels => 0x0022,
            Section::Roots => 0x0030,
            Section::LocalNames => 0x0031,
            Section::End => END_ID,
            Section::Optional(id) => id,
            Section::FileHeader | Section::CrossReferences => return None,
        })
    }

    /// The section an id names, if this reader knows it or it is optional.
    pub fn from_id(id: u16) -> Option<Section> {
        if id == END_ID {
            return Some(Section::End);
        }
        if let Some(known) = REQUIRED_SECTIONS.iter().find(|s| s.id() == Some(id)) {
            return Some(*known);
        }
        (id & OPTIONAL_SECTION_BIT != 0).then_some(Section::Optional(id))
    }
}

impl std::fmt::Display for Section {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            Section::FileHeader => "file header",
            Section::Metadata => "metadata",
            Section::Strings => "string table",
            Section::Types => "types",
            Section::NodeRuns => "node runs",
            Section::NodeAddress => "node addresses",
            Section::NodeType => "node types",
            Section::NodeSize => "node sizes",
            Section::NodeFlags => "node flags",
            Section::NodeRefcount => "node refcounts",
            Section::NodeName => "node names",
            Section::NodeLength => "node lengths",
            Section::NodeKeys => "node keys",
            Section::EdgeDegrees => "edge counts",
            Section::EdgeTargets => "edge targets",
            Section::EdgeLabels => "edge labels",
            Section::Roots => "roots",
            Section::LocalNames => "local names",
            Section::End => "end marker",
            Section::Optional(BOUNDS_SECTION_ID) => "container bounds",
            Section::Optional(id) => return write!(f, "optional section {id:#06x}"),
            Section::CrossReferences => "cross-references",
        };
        f.write_str(name)
    }
}

/// The 16-byte file header.
pub fn encode_file_header(version: u32) -> [u8; FILE_HEADER_LEN] {
    let mut header = [0u8; FILE_HEADER_LEN];
    header[..8].copy_from_slice(&MAGIC);
    header[8..12].copy_from_slice(&version.to_le_bytes());
    let crc = crc32fast::hash(&header[..12]);
    header[12..].copy_from_slice(&crc.to_le_bytes());
    header
}

/// Frames one section. Layout (little endian):
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 2 | id |
/// | 2 | 1 | codec |
/// | 3 | 1 | reserved, 0 |
/// | 4 | 4 | CRC32 of the stored payload |
/// | 8 | 8 | stored (compressed) payload length |
/// | 16 | 8 | raw (uncompressed) payload length |
/// | 24 | 4 | CRC32 of bytes 0..24 |
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SectionHeader {
    pub id: u16,
    pub codec: u8,
    pub payload_crc: u32,
    pub stored_len: u64,
    pub raw_len: u64,
}

impl SectionHeader {
    pub fn end_marker() -> SectionHeader {
        SectionHeader {
            id: END_ID,
            codec: CODEC_NONE,
            payload_crc: 0,
            stored_len: 0,
            raw_len: 0,
        }
    }

    pub fn encode(&self) -> [u8; SECTION_HEADER_LEN] {
        let mut bytes = [0u8; SECTION_HEADER_LEN];
        bytes[0..2].copy_from_slice(&self.id.to_le_bytes());
        bytes[2] = self.codec;
        bytes[4..8].copy_from_slice(&self.payload_crc.to_le_bytes());
        bytes[8..16].copy_from_slice(&self.stored_len.to_le_bytes());
        bytes[16..24].copy_from_slice(&self.raw_len.to_le_bytes());
        let crc = crc32fast::hash(&bytes[..24]);
        bytes[24..28].copy_from_slice(&crc.to_le_bytes());
        bytes
    }

    /// Parses a header whose own CRC matches; `Err` carries what is wrong.
    pub fn decode(bytes: &[u8; SECTION_HEADER_LEN]) -> Result<SectionHeader, String> {
        let stored_crc = u32::from_le_bytes([bytes[24], bytes[25], bytes[26], bytes[27]]);
        let actual_crc = crc32fast::hash(&bytes[..24]);
        if stored_crc != actual_crc {
            return Err(format!(
                "section header checksum mismatch (stored {stored_crc:#010x}, computed {actual_crc:#010x})"
            ));
        }
        if bytes[3] != 0 {
            return Err(format!(
                "reserved header byte is {:#04x}, expected 0",
                bytes[3]
            ));
        }
        let u64_at = |at: usize| {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(&bytes[at..at + 8]);
            u64::from_le_bytes(raw)
        };
        Ok(SectionHeader {
            id: u16::from_le_bytes([bytes[0], bytes[1]]),
            codec: bytes[2],
            payload_crc: u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
            stored_len: u64_at(8),
            raw_len: u64_at(16),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn section_ids_are_unique_ascending_and_round_trip() {
        let ids: Vec<u16> = REQUIRED_SECTIONS.iter().filter_map(|s| s.id()).collect();
        assert_eq!(ids.len(), REQUIRED_SECTIONS.len());
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        for section in REQUIRED_SECTIONS {
            let id = section.id().unwrap_or_default();
            assert_eq!(id & OPTIONAL_SECTION_BIT, 0, "{section} must be required");
            assert_eq!(Section::from_id(id), Some(section));
        }
        assert_eq!(Section::from_id(END_ID), Some(Section::End));
        assert_eq!(Section::from_id(0x8123), Some(Section::Optional(0x8123)));
        assert_eq!(Section::from_id(0x0005), None);
    }

    #[test]
    fn section_header_round_trips_and_detects_damage() {
        let header = SectionHeader {
            id: 0x0021,
            codec: CODEC_ZSTD,
            payload_crc: 0xdead_beef,
            stored_len: 12345,
            raw_len: 987_654_321,
        };
        let mut bytes = header.encode();
        assert_eq!(SectionHeader::decode(&bytes), Ok(header));
        bytes[10] ^= 0x40;
        assert!(SectionHeader::decode(&bytes).is_err());
    }
}
