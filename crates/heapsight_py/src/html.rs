//! The HTML report for Python callers (`heapsight run --report`, later `attach`): JSON in,
//! one self-contained HTML page out, rendered by `heapsight_report::to_html`.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(render_html_report, m)?)?;
    Ok(())
}

/// `render_html_report(report_json=None, run_json=None, title=None) -> str`: the page for
/// an analysis report (`heapsight report A B --json`) and/or a run result (`heapsight run
/// --json`, optionally with `series`), both given as JSON text.
#[pyfunction]
#[pyo3(signature = (report_json=None, run_json=None, title=None))]
fn render_html_report(
    py: Python<'_>,
    report_json: Option<&str>,
    run_json: Option<&str>,
    title: Option<&str>,
) -> PyResult<String> {
    let (report_json, run_json, title) = (
        report_json.map(str::to_owned),
        run_json.map(str::to_owned),
        title.map(str::to_owned),
    );
    py.detach(|| {
        heapsight_report::to_html_from_json(
            title.as_deref(),
            report_json.as_deref(),
            run_json.as_deref(),
        )
    })
    .map_err(|(what, e)| {
        PyValueError::new_err(format!(
            "the {what} is not valid JSON ({e}); pass json.dumps() of it"
        ))
    })
}
