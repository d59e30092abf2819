//! Errors of the writer and the reader. Each message says what happened and what the
//! user can do about it, because the CLI prints them as they are.

use std::io;

use crate::layout::{Section, MAGIC};

/// Everything that can go wrong writing or reading a `.hsnap` file.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The bytes are not a heapsight snapshot at all.
    #[error("not a heapsight snapshot: {looks_like}; {}", looks_like.advice())]
    NotASnapshot { looks_like: ForeignKind },

    /// A snapshot written by a newer (or unknown) version of the format.
    #[error(
        "the snapshot uses file format version {found}, but this heapsight reads versions up to \
         {supported}; upgrade heapsight to read it"
    )]
    UnsupportedVersion { found: u32, supported: u32 },

    /// The file ends before the format says it should.
    #[error(
        "the file is truncated in section '{section}' (was the capture interrupted or the disk \
         full?); take a new snapshot"
    )]
    Truncated { section: Section },

    /// The bytes are there but wrong: checksum mismatch, impossible value, broken reference.
    #[error(
        "the file is corrupt in section '{section}': {detail}; the file was damaged after it was \
         written, take a new snapshot"
    )]
    Corrupt { section: Section, detail: String },

    /// The writer refused an in-memory snapshot that breaks the model's invariants.
    #[error("refusing to write an inconsistent snapshot: {detail} (this is a heapsight bug, please report it)")]
    InvalidSnapshot { detail: String },

    /// The operating system refused a read or write.
    #[error("{context}: {source}{}", io_advice(source))]
    Io {
        /// What was being done, with the path: "writing /tmp/app.hsnap".
        context: String,
        #[source]
        source: io::Error,
    },
}

impl FormatError {
    pub(crate) fn corrupt(section: Section, detail: impl Into<String>) -> FormatError {
        FormatError::Corrupt {
            section,
            detail: detail.into(),
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> FormatError {
        FormatError::Io {
            context: context.into(),
            source,
        }
    }
}

/// `ENOSPC` has the same number on Linux, macOS and the BSDs; `io::ErrorKind::StorageFull`
/// would need a newer Rust than the workspace's minimum.
const ENOSPC: i32 = 28;

fn io_advice(error: &io::Error) -> &'static str {
    if error.raw_os_error() == Some(ENOSPC) {
        return " (the disk is full: free some space or write the snapshot to another disk)";
    }
    match error.kind() {
        io::ErrorKind::NotFound => " (check that the file or directory exists)",
        io::ErrorKind::PermissionDenied => " (check the permissions of the file and its directory)",
        _ => "",
    }
}

/// What a file that is not a snapshot appears to be, judged from its first bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ForeignKind {
    Empty,
    /// A snapshot whose bytes were changed by a text-mode copy (line endings converted,
    /// or the high bit stripped).
    DamagedByTextTransfer,
    Gzip,
    Zstd,
    Zip,
    Png,
    Elf,
    Pdf,
    Text,
    /// Anything else; holds the first bytes (at most 8) for the message.
    Unknown {
        first_bytes: Vec<u8>,
    },
}

impl ForeignKind {
    /// Judges a file that does not start with [`MAGIC`] from its first bytes.
    pub fn sniff(prefix: &[u8]) -> ForeignKind {
        if prefix.is_empty() {
            return ForeignKind::Empty;
        }
        if looks_like_text_damaged_snapshot(prefix) {
            return ForeignKind::DamagedByTextTransfer;
        }
        let starts = |magic: &[u8]| prefix.starts_with(magic);
        if starts(&[0x1f, 0x8b]) {
            ForeignKind::Gzip
        } else if starts(&[0x28, 0xb5, 0x2f, 0xfd]) {
            ForeignKind::Zstd
        } else if starts(b"PK\x03\x04") || starts(b"PK\x05\x06") {
            ForeignKind::Zip
        } else if starts(b"\x89PNG\r\n\x1a\n") {
            ForeignKind::Png
        } else if starts(b"\x7fELF") {
            ForeignKind::Elf
        } else if starts(b"%PDF") {
            ForeignKind::Pdf
        } else if is_probably_text(prefix) {
            ForeignKind::Text
        } else {
            ForeignKind::Unknown {
                first_bytes: prefix.iter().take(8).copied().collect(),
            }
        }
    }

    fn advice(&self) -> &'static str {
        match self {
            ForeignKind::Empty => {
                "the capture probably failed before writing anything; take a new snapshot"
            }
            ForeignKind::DamagedByTextTransfer => {
                "copy the original file again in binary mode (scp, or FTP in binary mode)"
            }
            ForeignKind::Gzip => "if it is a compressed snapshot, decompress it first (gunzip)",
            ForeignKind::Zstd => "if it is a compressed snapshot, decompress it first (unzstd)",
            ForeignKind::Zip => "if the snapshot is inside this archive, extract it first",
            _ => "pass a .hsnap file written by heapsight",
        }
    }
}

impl std::fmt::Display for ForeignKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ForeignKind::Empty => f.write_str("the file is empty"),
            ForeignKind::DamagedByTextTransfer => f.write_str(
                "it is a heapsight snapshot damaged by a text-mode transfer (line endings \
                 converted or high bits stripped)",
            ),
            ForeignKind::Gzip => f.write_str("it looks like gzip-compressed data"),
            ForeignKind::Zstd => f.write_str("it looks like zstd-compressed data"),
            ForeignKind::Zip => f.write_str("it looks like a zip archive"),
            ForeignKind::Png => f.write_str("it looks like a PNG image"),
            ForeignKind::Elf => f.write_str("it looks like an executable (ELF)"),
            ForeignKind::Pdf => f.write_str("it looks like a PDF document"),
            ForeignKind::Text => f.write_str("it looks like a text file"),
            ForeignKind::Unknown { first_bytes } => {
                f.write_str("unknown content starting with bytes")?;
                for byte in first_bytes {
                    write!(f, " {byte:02x}")?;
                }
                Ok(())
            }
        }
    }
}

/// `\x89HSNAP\r\n` after LF→CRLF (`\r\r\n`), CRLF→LF (`\n`), or 7-bit stripping (`\x09`).
fn looks_like_text_damaged_snapshot(prefix: &[u8]) -> bool {
    let name = &MAGIC[1..6];
    let body_ok = prefix.get(1..6) == Some(name);
    let first_ok = matches!(prefix.first(), Some(0x89) | Some(0x09));
    body_ok && first_ok && !prefix.starts_with(&MAGIC)
}

fn is_probably_text(prefix: &[u8]) -> bool {
    // A UTF-8 sequence may be cut at the end of the prefix; judge only the valid part.
    let valid = match std::str::from_utf8(prefix) {
        Ok(text) => text,
        Err(e) if e.error_len().is_none() => {
            std::str::from_utf8(&prefix[..e.valid_up_to()]).unwrap_or_default()
        }
        Err(_) => return false,
    };
    !valid.is_empty()
        && valid
            .chars()
            .all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t' | '\x0c'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_common_foreign_files() {
        assert_eq!(ForeignKind::sniff(b""), ForeignKind::Empty);
        assert_eq!(ForeignKind::sniff(b"hello, world\n"), ForeignKind::Text);
        assert_eq!(
            ForeignKind::sniff("héllo wörld".as_bytes()),
            ForeignKind::Text
        );
        assert_eq!(
            ForeignKind::sniff(b"\x1f\x8b\x08\x00rest"),
            ForeignKind::Gzip
        );
        assert_eq!(
            ForeignKind::sniff(b"\x89PNG\r\n\x1a\n\0\0"),
            ForeignKind::Png
        );
        assert_eq!(ForeignKind::sniff(b"\x28\xb5\x2f\xfd\0"), ForeignKind::Zstd);
        assert_eq!(
            ForeignKind::sniff(b"\x89HSNAP\n\x01\0"),
            ForeignKind::DamagedByTextTransfer
        );
        assert_eq!(
            ForeignKind::sniff(b"\x89HSNAP\r\r\n"),
            ForeignKind::DamagedByTextTransfer
        );
        assert_eq!(
            ForeignKind::sniff(b"\x09HSNAP\r\n"),
            ForeignKind::DamagedByTextTransfer
        );
        assert_eq!(
            ForeignKind::sniff(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
            ForeignKind::Unknown {
                first_bytes: vec![0, 1, 2, 3, 4, 5, 6, 7]
            }
        );
    }

    #[test]
    fn messages_give_advice() {
        let err = FormatError::Truncated {
            section: Section::EdgeTargets,
        };
        assert_eq!(
            err.to_string(),
            "the file is truncated in section 'edge targets' (was the capture interrupted or the \
             disk full?); take a new snapshot"
        );
        let full = FormatError::io("writing x.hsnap", io::Error::from_raw_os_error(ENOSPC));
        assert!(full.to_string().contains("the disk is full"), "{full}");
        let foreign = FormatError::NotASnapshot {
            looks_like: ForeignKind::Gzip,
        };
        assert!(foreign.to_string().contains("gunzip"), "{foreign}");
    }
}
