//! `heapsight._heapsight`: the only PyO3 crate. Heap capture (a Rust walk through each
//! type's `tp_traverse`), the census, and the CLI entry point.

mod capture;

use pyo3::prelude::*;

/// Runs the `heapsight` command line with `argv` (program name first); returns the exit status.
#[pyfunction]
fn run_cli(py: Python<'_>, argv: Vec<String>) -> i32 {
    py.detach(|| heapsight_cli::run(argv))
}

#[pymodule]
fn _heapsight(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(run_cli, m)?)?;
    capture::register(m)?;
    Ok(())
}
