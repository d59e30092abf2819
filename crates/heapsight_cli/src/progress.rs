//! Phase display for long work: one updating line on stderr, only when stderr is a
//! terminal (pipes and CI logs stay clean).

use std::io::{IsTerminal, Write};
use std::time::Instant;

pub struct Progress {
    enabled: bool,
    started: Instant,
}

impl Progress {
    pub fn new() -> Self {
        Progress {
            enabled: std::io::stderr().is_terminal(),
            started: Instant::now(),
        }
    }

    /// Shows what is being done now, replacing the previous phase.
    pub fn phase(&self, what: &str) {
        if self.enabled {
            let elapsed = self.started.elapsed().as_secs_f64();
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K[{elapsed:5.1}s] {what} ...");
            let _ = err.flush();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if self.enabled {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}
