//! Non-stop capture: the heap is walked in a forked child while the parent keeps serving.
//!
//! The parent holds the GIL for the capture's preparation (roots, thread names, the
//! collector paused: [`walk::prepare`]) and `fork()` (copying its page tables), then
//! releases it while it waits, so its other threads run on. The child starts with one
//! thread, a byte-for-byte copy of the heap and the GIL held by that thread; it walks the
//! copy, writes the file atomically, reports one line through a pipe and leaves with
//! `_exit`: no atexit handler, no buffer flush, no Python at-fork hook (the fork does not
//! go through `os.fork`, so the agent's `after_in_child` restart never runs).
//!
//! What the child may and may not do (it inherits locks that vanished threads may hold):
//! - It runs no Python code and never releases the GIL ([`walk::AfterWalk::NoPython`]):
//!   names are read from code objects, objects whose size needs a user `__sizeof__` keep
//!   an estimated size, and no reference is dropped. A GIL release would wait on the
//!   parent's threads that were waiting for the GIL at the fork, which do not exist here.
//! - glibc `malloc` is fork-safe (its own atfork handlers), so Rust allocation is fine.
//! - Python object memory is consistent: the GIL was held by this thread at the fork.
//! - Signals are blocked in the child: a Ctrl-C sent to the process group, or a SIGTERM
//!   sent to the group by a process manager, must not run the app's Python handlers in it.

use std::ffi::c_int;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pyo3::create_exception;
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyTimeoutError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::walk::{self, CaptureOptions};

create_exception!(
    _heapsight,
    ForkError,
    PyOSError,
    "The snapshot could not fork a child (no child was started); an in-process capture is still possible."
);

/// Longest report line the parent reads from the child (a summary or an error message).
const MAX_REPORT_BYTES: usize = 16 * 1024;
/// How often the waiting parent checks the child's exit status besides the pipe.
const POLL_SLICE: Duration = Duration::from_millis(50);

/// Child exit statuses, one per failure kind (the pipe carries the message).
mod exit_code {
    pub const OK: i32 = 0;
    pub const CAPTURE_FAILED: i32 = 10;
    pub const WRITE_FAILED: i32 = 11;
    pub const PANICKED: i32 = 12;
}

/// Registers `snapshot_fork` and `ForkError` on the extension module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("ForkError", m.py().get_type::<ForkError>())?;
    m.add_function(wrap_pyfunction!(snapshot_fork, m)?)?;
    Ok(())
}

/// `snapshot_fork(path, include_values=False, timeout=600.0) -> dict`: like `snapshot`,
/// but the heap is walked and written by a forked child; this process holds the GIL only
/// for the `fork()` itself (`pause_ms` in the summary).
#[pyfunction]
#[pyo3(signature = (path, include_values = false, timeout = 600.0))]
fn snapshot_fork<'py>(
    py: Python<'py>,
    path: PathBuf,
    include_values: bool,
    timeout: f64,
) -> PyResult<Bound<'py, PyDict>> {
    if !(timeout.is_finite() && timeout > 0.0) {
        return Err(pyo3::exceptions::PyValueError::new_err(format!(
            "timeout must be a positive number of seconds, not {timeout}"
        )));
    }
    if cfg!(Py_GIL_DISABLED) {
        return Err(ForkError::new_err(
            "fork capture needs the GIL (this is a free-threaded build); use fork=False",
        ));
    }
    // A missing directory is known before forking: fail fast, without a pause.
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(PyOSError::new_err(format!(
            "cannot write {}: {} is not an existing directory",
            path.display(),
            dir.display()
        )));
    }
    let parent_pid = std::process::id();
    let parent_rss = resident_set_bytes();
    let (read_end, write_end) = pipe()?;
    let cpu_before = thread_cpu_ms();
    let started = Instant::now();
    let prepared = walk::prepare(py)?;
    // SAFETY: the GIL is held, so no other Python thread is mid-bytecode; the child runs
    // only `child_main`, which never returns.
    let pid = unsafe { libc::fork() };
    // Read errno before anything else can overwrite it.
    let fork_error = (pid < 0).then(std::io::Error::last_os_error);
    if pid == 0 {
        drop(read_end);
        child_main(
            py,
            prepared,
            &path,
            include_values,
            parent_pid,
            parent_rss,
            write_end,
        );
    }
    // Restarts the collector and drops the references the preparation took.
    drop(prepared);
    let pause_ms = started.elapsed().as_secs_f64() * 1e3;
    // On a loaded machine the wall pause includes waiting for a CPU; this is the fork's
    // own cost (kernel time copying page tables).
    let pause_cpu_ms = thread_cpu_ms() - cpu_before;
    drop(write_end);
    if let Some(err) = fork_error {
        return Err(ForkError::new_err(format!(
            "cannot fork a child to take the snapshot: {err}; use fork=False to capture in-process"
        )));
    }
    let timeout = Duration::from_secs_f64(timeout.min(1e9));
    let outcome = py.detach(|| wait_for_child(pid, read_end, timeout));
    if matches!(
        outcome.status,
        ChildStatus::TimedOut | ChildStatus::Signaled(_)
    ) {
        remove_orphan_temps(&path, started);
    }
    let wait_ms = started.elapsed().as_secs_f64() * 1e3;
    let report = String::from_utf8_lossy(&outcome.report).into_owned();
    let report = report.trim_end();
    match (report.strip_prefix("ok "), &outcome.status) {
        // A child reaped by someone else (SIGCHLD handler, SIG_IGN) still reported success.
        (Some(fields), ChildStatus::Exited(0) | ChildStatus::ReapedElsewhere) => {
            let out = PyDict::new(py);
            for field in fields.split(' ') {
                if let Some((key, value)) = field.split_once('=') {
                    if let Ok(n) = value.parse::<u64>() {
                        out.set_item(key, n)?;
                    } else if let Ok(x) = value.parse::<f64>() {
                        out.set_item(key, x)?;
                    }
                }
            }
            out.set_item("include_values", include_values)?;
            out.set_item("path", path.display().to_string())?;
            out.set_item("mode", "fork")?;
            out.set_item("child_pid", pid)?;
            out.set_item("pause_ms", pause_ms)?;
            out.set_item("pause_cpu_ms", pause_cpu_ms)?;
            out.set_item("wait_ms", wait_ms)?;
            Ok(out)
        }
        _ => Err(child_error(pid, report, &outcome.status, timeout)),
    }
}

/// The Python exception for a child that did not succeed: what happened and what to do.
fn child_error(pid: i32, report: &str, status: &ChildStatus, timeout: Duration) -> PyErr {
    if let Some(rest) = report.strip_prefix("err ") {
        let (kind, message) = rest.split_once(' ').unwrap_or((rest, ""));
        let message = message.replace("\\n", "\n");
        return match kind {
            "write" => PyOSError::new_err(message),
            _ => PyRuntimeError::new_err(format!("snapshot child failed: {message}")),
        };
    }
    match status {
        ChildStatus::TimedOut => PyTimeoutError::new_err(format!(
            "the snapshot child (pid {pid}) did not finish within {:.0} s and was killed; \
             pass a longer timeout, or fork=False to capture in-process",
            timeout.as_secs_f64()
        )),
        ChildStatus::Signaled(sig) if *sig == libc::SIGKILL => PyRuntimeError::new_err(format!(
            "the snapshot child (pid {pid}) was killed (SIGKILL: out of memory?); \
             free memory and retry"
        )),
        // A crash of the walk itself: the copy died, the process did not. Capturing
        // in-process would crash the process, so that is not suggested.
        ChildStatus::Signaled(sig) => PyRuntimeError::new_err(format!(
            "the snapshot child (pid {pid}) crashed with signal {sig}; this process is \
             unaffected. This is a heapsight bug: please report it"
        )),
        ChildStatus::Exited(code) => PyRuntimeError::new_err(format!(
            "the snapshot child (pid {pid}) exited with status {code} without a report; \
             use fork=False to capture in-process"
        )),
        ChildStatus::ReapedElsewhere => PyRuntimeError::new_err(format!(
            "the snapshot child (pid {pid}) was reaped by another waiter (a SIGCHLD handler \
             or os.wait() in another thread) before it reported; use fork=False"
        )),
    }
}

/// `pipe2(O_CLOEXEC)`: the write end must not leak into programs other threads exec.
fn pipe() -> PyResult<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as c_int; 2];
    // SAFETY: `fds` has room for the two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        let err = std::io::Error::last_os_error();
        return Err(ForkError::new_err(format!(
            "cannot create a pipe to the snapshot child: {err}"
        )));
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// CPU time (user and system) of the calling thread, in milliseconds.
fn thread_cpu_ms() -> f64 {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut usage);
        usage
    };
    let ms = |t: libc::timeval| t.tv_sec as f64 * 1e3 + t.tv_usec as f64 / 1e3;
    ms(usage.ru_utime) + ms(usage.ru_stime)
}

/// Resident set size of this process from `/proc/self/statm` (0 where unavailable), read
/// in the parent: the child's own figure would describe the copy, not the target.
fn resident_set_bytes() -> u64 {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(0) as u64;
    statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse::<u64>().ok())
        .unwrap_or(0)
        * page
}

// ------------------------------------------------------------------------------- child

/// Everything the child does; never returns.
fn child_main(
    py: Python<'_>,
    prepared: walk::Prepared<'_>,
    path: &Path,
    include_values: bool,
    parent_pid: u32,
    parent_rss: u64,
    report_fd: OwnedFd,
) -> ! {
    // SAFETY: plain syscalls on this process's own state.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
        // A walk whose parent died (killed, crashed) would only waste a core.
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        if libc::getppid() as u32 != parent_pid {
            libc::_exit(exit_code::PANICKED);
        }
    }
    let mut pipe = std::fs::File::from(report_fd);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        child_capture(py, prepared, path, include_values, parent_pid, parent_rss)
    }));
    let (code, line) = match result {
        Ok(Ok(fields)) => (exit_code::OK, format!("ok {fields}\n")),
        Ok(Err((code, kind, message))) => (
            code,
            format!("err {kind} {}\n", message.replace('\n', "\\n")),
        ),
        Err(_) => (
            exit_code::PANICKED,
            "err panic heapsight's capture panicked in the snapshot child (a bug: please \
             report it); fork=False captures in-process\n"
                .to_owned(),
        ),
    };
    let mut bytes = line.into_bytes();
    bytes.truncate(MAX_REPORT_BYTES);
    let _ = pipe.write_all(&bytes);
    // SAFETY: ends the child without unwinding into Python or running exit handlers.
    unsafe { libc::_exit(code) }
}

type ChildFailure = (i32, &'static str, String);

/// Walks and writes; returns the summary fields as `key=value` pairs.
fn child_capture(
    py: Python<'_>,
    prepared: walk::Prepared<'_>,
    path: &Path,
    include_values: bool,
    parent_pid: u32,
    parent_rss: u64,
) -> Result<String, ChildFailure> {
    let started = Instant::now();
    let options = CaptureOptions { include_values };
    let captured = walk::capture_prepared(py, prepared, &options, walk::AfterWalk::NoPython);
    let mut snap = captured.map_err(|e| {
        (
            exit_code::CAPTURE_FAILED,
            "capture",
            format!("the heap walk failed: {e}"),
        )
    })?;
    let capture_ms = started.elapsed().as_secs_f64() * 1e3;
    // The snapshot describes the target, not this short-lived copy of it.
    snap.metadata.pid = parent_pid;
    if parent_rss > 0 {
        snap.metadata.rss_bytes = parent_rss;
    }
    let write_started = Instant::now();
    let stats = heapsight_snapshot::write_packed_file(path, &snap).map_err(|e| {
        (
            exit_code::WRITE_FAILED,
            "write",
            format!("cannot write {}: {e}", path.display()),
        )
    })?;
    let write_ms = write_started.elapsed().as_secs_f64() * 1e3;
    Ok(format!(
        "nodes={} edges={} roots={} types={} gc_tracked={} frozen={} walk_ms={} \
         walk_threads={} file_bytes={} capture_ms={capture_ms:.3} write_ms={write_ms:.3}",
        snap.n_nodes(),
        snap.n_edges(),
        snap.roots.len(),
        snap.types.len(),
        snap.metadata.n_gc_tracked,
        snap.metadata.n_frozen,
        snap.metadata.walk_ms,
        walk::last_walk_threads(),
        stats.file_bytes,
    ))
}

// ------------------------------------------------------------------------------ parent

enum ChildStatus {
    Exited(i32),
    Signaled(i32),
    TimedOut,
    /// `waitpid` said ECHILD: a SIGCHLD handler, `os.wait()` elsewhere, or SIGCHLD
    /// ignored (the kernel reaps) took the status; the pipe still tells what happened.
    ReapedElsewhere,
}

struct ChildOutcome {
    status: ChildStatus,
    report: Vec<u8>,
}

/// Reads the child's report and reaps exactly that child (never `wait(-1)`, which could
/// steal the app's own children), killing it after `timeout`. Runs without the GIL.
fn wait_for_child(pid: libc::pid_t, read_end: OwnedFd, timeout: Duration) -> ChildOutcome {
    let fd = read_end.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
    let deadline = Instant::now() + timeout;
    let mut report = Vec::new();
    let mut eof = false;
    loop {
        if !eof {
            let slice = deadline
                .saturating_duration_since(Instant::now())
                .min(POLL_SLICE);
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&mut pfd, 1, slice.as_millis() as c_int) };
            eof = drain(fd, &mut report);
        } else {
            // The child closes the pipe just before `_exit`: its status follows shortly.
            std::thread::sleep(Duration::from_millis(2));
        }
        if let Some(status) = try_reap(pid, libc::WNOHANG) {
            // Everything the child wrote is in the pipe by now.
            drain(fd, &mut report);
            return ChildOutcome { status, report };
        }
        if Instant::now() >= deadline {
            // SAFETY: `pid` is our child and not yet reaped, so the pid was not reused.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let _ = try_reap(pid, 0);
            return ChildOutcome {
                status: ChildStatus::TimedOut,
                report: Vec::new(),
            };
        }
    }
}

/// Reads what is available; true at end of file.
fn drain(fd: c_int, report: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: reads into a local buffer of the given size.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n == 0 {
            return true;
        }
        if n < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return false;
        }
        if report.len() < MAX_REPORT_BYTES {
            report.extend_from_slice(&buf[..n as usize]);
        }
    }
}

/// `waitpid(pid)`: None while it runs (WNOHANG).
fn try_reap(pid: libc::pid_t, flags: c_int) -> Option<ChildStatus> {
    loop {
        let mut status: c_int = 0;
        // SAFETY: waits for our own child only.
        let r = unsafe { libc::waitpid(pid, &mut status, flags) };
        if r == pid {
            return Some(if libc::WIFSIGNALED(status) {
                ChildStatus::Signaled(libc::WTERMSIG(status))
            } else {
                ChildStatus::Exited(libc::WEXITSTATUS(status))
            });
        }
        if r == 0 {
            return None;
        }
        match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::EINTR) => continue,
            _ => return Some(ChildStatus::ReapedElsewhere),
        }
    }
}

/// A child killed while writing leaves its temporary file (`.<name>.XXXXXX.tmp`, see
/// `heapsight_snapshot::write_file`); remove the ones created since this capture began.
fn remove_orphan_temps(path: &Path, since: Instant) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!(".{}.", name.to_string_lossy());
    let age = since.elapsed() + Duration::from_secs(1);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let file_name = file_name.to_string_lossy();
        if !(file_name.starts_with(&prefix) && file_name.ends_with(".tmp")) {
            continue;
        }
        let recent = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|elapsed| elapsed <= age);
        if recent {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
