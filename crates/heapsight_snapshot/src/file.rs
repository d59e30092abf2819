//! Files on disk: atomic writes, whole reads and the cheap metadata read.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::path::Path;

use crate::decode::{decode_from, read_info, SnapshotInfo, Source};
use crate::encode::{encode_sections, Writable, WriteStats};
use crate::error::FormatError;
use crate::model::Snapshot;
use crate::packed::PackedSnapshot;

const IO_BUFFER_BYTES: usize = 1 << 20;

/// Writes `snap` to `path` atomically: into a temporary file in the same directory, which
/// is flushed to disk and then renamed over `path`. On any failure the temporary file is
/// removed and a file already at `path` is left as it was.
///
/// The file is created readable by its owner only (mode 0600 on Unix): snapshots hold
/// names, and with `include_values` string contents, from the process's memory.
pub fn write_file(path: &Path, snap: &Snapshot) -> Result<WriteStats, FormatError> {
    write_any(path, snap)
}

/// [`write_file`] for the capture's packed form: the same file, the same guarantees.
pub fn write_packed_file(path: &Path, snap: &PackedSnapshot) -> Result<WriteStats, FormatError> {
    write_any(path, snap)
}

/// Compresses first, so that a snapshot the checks refuse never creates a file.
fn write_any(path: &Path, snap: &impl Writable) -> Result<WriteStats, FormatError> {
    let sections = encode_sections(snap)?;
    write_atomically(path, |file| {
        let mut out = BufWriter::with_capacity(IO_BUFFER_BYTES, file);
        let stats = sections.write_to(&mut out)?;
        out.flush()?;
        Ok(stats)
    })
}

/// Writes any bytes (reports, graphs) with the same atomic-replace protocol as
/// [`write_file`]: a failure never leaves a half file or loses an earlier one. Unlike
/// snapshots, such files are readable by everyone (mode 0644 on Unix), like any file a
/// tool writes on request.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), FormatError> {
    write_atomically(path, |file| {
        file.write_all(data)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        }
        Ok(())
    })
}

/// The atomic-replace protocol of [`write_file`], with the content written by `body`.
/// Separate so that tests can inject failures at any point of the body.
pub(crate) fn write_atomically<T>(
    path: &Path,
    body: impl FnOnce(&mut File) -> io::Result<T>,
) -> Result<T, FormatError> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let file_name = path.file_name().ok_or_else(|| {
        FormatError::io(
            format!("writing {}", path.display()),
            io::Error::new(io::ErrorKind::InvalidInput, "the path does not name a file"),
        )
    })?;
    // A leading dot keeps the half-written file out of casual listings; the name still
    // says what it belongs to if a crash leaves it behind.
    let mut temp = tempfile::Builder::new()
        .prefix(&format!(".{}.", file_name.to_string_lossy()))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| {
            FormatError::io(format!("creating a temporary file in {}", dir.display()), e)
        })?;
    let context = || format!("writing {}", temp_display(path));
    let value = body(temp.as_file_mut()).map_err(|e| FormatError::io(context(), e))?;
    temp.as_file()
        .sync_all()
        .map_err(|e| FormatError::io(context(), e))?;
    temp.persist(path).map_err(|e| {
        // Dropping e.file removes the temporary file.
        FormatError::io(format!("replacing {}", path.display()), e.error)
    })?;
    // Makes the rename itself durable. The data is already on disk and in place, and some
    // filesystems refuse to sync a directory, so a failure here is not worth failing for.
    if let Ok(dir_handle) = File::open(dir) {
        let _ = dir_handle.sync_all();
    }
    Ok(value)
}

fn temp_display(path: &Path) -> String {
    format!("{} (temporary file)", path.display())
}

/// Reads and fully validates a snapshot file.
pub fn read_file(path: &Path) -> Result<Snapshot, FormatError> {
    let (file, len) = open(path)?;
    let mut source = Source::new(
        BufReader::with_capacity(IO_BUFFER_BYTES, file),
        len,
        path.display().to_string(),
    );
    decode_from(&mut source)
}

/// Reads the file header, the metadata section and the other sections' headers, without
/// decompressing the heap: cheap whatever the file size. The heap sections' checksums are
/// not verified here; [`read_file`] does that.
pub fn read_metadata(path: &Path) -> Result<SnapshotInfo, FormatError> {
    let (file, len) = open(path)?;
    // Small buffer: the payloads between section headers are skipped by seeking.
    let mut source = Source::new(
        BufReader::with_capacity(64 * 1024, file),
        len,
        path.display().to_string(),
    );
    read_info(&mut source, len)
}

fn open(path: &Path) -> Result<(File, u64), FormatError> {
    let context = || format!("opening {}", path.display());
    let file = File::open(path).map_err(|e| FormatError::io(context(), e))?;
    let meta = file.metadata().map_err(|e| FormatError::io(context(), e))?;
    if meta.is_dir() {
        return Err(FormatError::io(
            context(),
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "it is a directory, not a snapshot file",
            ),
        ));
    }
    Ok((file, meta.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|name| name.ends_with(".tmp"))
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn failing_body_keeps_the_earlier_file_and_removes_the_temporary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("app.hsnap");
        std::fs::write(&target, b"earlier snapshot").expect("seed file");
        let result: Result<(), FormatError> = write_atomically(&target, |file| {
            file.write_all(b"half a snapshot")?;
            Err(io::Error::from_raw_os_error(28))
        });
        let err = result.expect_err("the injected failure must surface");
        assert!(matches!(err, FormatError::Io { .. }), "{err:?}");
        assert!(err.to_string().contains("disk is full"), "{err}");
        assert_eq!(
            std::fs::read(&target).expect("read back"),
            b"earlier snapshot"
        );
        assert_eq!(leftovers(dir.path()), Vec::<String>::new());
    }

    #[test]
    fn successful_body_replaces_the_file_and_leaves_nothing_else() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("app.hsnap");
        std::fs::write(&target, b"earlier").expect("seed file");
        write_atomically(&target, |file| file.write_all(b"newer")).expect("write");
        assert_eq!(std::fs::read(&target).expect("read back"), b"newer");
        assert_eq!(leftovers(dir.path()), Vec::<String>::new());
    }

    #[test]
    fn write_atomic_replaces_plain_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("report.html");
        std::fs::write(&target, b"old report").expect("seed file");
        write_atomic(&target, b"<html>new</html>").expect("write");
        assert_eq!(
            std::fs::read(&target).expect("read back"),
            b"<html>new</html>"
        );
        assert_eq!(leftovers(dir.path()), Vec::<String>::new());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&target)
                .expect("stat")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o644, "mode {mode:o}");
        }
        let missing = dir.path().join("missing/report.html");
        assert!(matches!(
            write_atomic(&missing, b"x"),
            Err(FormatError::Io { .. })
        ));
    }

    #[cfg(unix)]
    #[test]
    fn written_files_are_private_to_their_owner() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("app.hsnap");
        write_file(&target, &crate::SnapshotBuilder::new().finish()).expect("write");
        let mode = std::fs::metadata(&target)
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "mode {mode:o}");
    }
}
