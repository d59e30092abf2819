//! `heapsight._heapsight`: the only PyO3 crate. Heap capture (a Rust walk through each
//! type's `tp_traverse`), the census, and the CLI entry point.

mod analyze;
mod api;
mod capture;
mod cli_host;
mod html;

use pyo3::prelude::*;

#[pymodule]
fn _heapsight(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(cli_host::run_cli, m)?)?;
    capture::register(m)?;
    m.add_function(wrap_pyfunction!(capture::shims::_layout_facts, m)?)?;
    api::register(m)?;
    analyze::register(m)?;
    html::register(m)?;
    Ok(())
}
