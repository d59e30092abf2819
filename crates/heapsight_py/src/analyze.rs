//! Analysis natives for `heapsight run`: the statistical verdict of a measured series.

use heapsight_analysis::{assess, Series, VerdictConfig, VerdictKind, XUnit, YUnit};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(assess_series, m)?)?;
    Ok(())
}

fn x_unit(name: &str) -> PyResult<XUnit> {
    match name {
        "requests" => Ok(XUnit::Requests),
        "seconds" => Ok(XUnit::Seconds),
        "samples" => Ok(XUnit::Samples),
        other => Err(PyValueError::new_err(format!(
            "x_unit must be 'requests', 'seconds' or 'samples', not {other:?}"
        ))),
    }
}

fn y_unit(name: &str) -> PyResult<YUnit> {
    match name {
        "objects" => Ok(YUnit::Objects),
        "bytes" => Ok(YUnit::Bytes),
        other => Err(PyValueError::new_err(format!(
            "y_unit must be 'objects' or 'bytes', not {other:?}"
        ))),
    }
}

/// `assess_series(label, points, x_unit="requests", y_unit="objects") -> dict`: the
/// verdict of heapsight_analysis on `(x, y)` points, as a dict with `kind` ("leak",
/// "no_leak", "inconclusive"), `slope_per_unit`, `ci_low`, `ci_high`, `p_value`,
/// `relative_growth`, `warmup_discarded`, `plateau_detected`, `level` and `explanation`.
#[pyfunction]
#[pyo3(signature = (label, points, x_unit="requests", y_unit="objects"))]
fn assess_series<'py>(
    py: Python<'py>,
    label: &str,
    points: Vec<(f64, f64)>,
    x_unit: &str,
    y_unit: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let series = Series::new(label, self::x_unit(x_unit)?, self::y_unit(y_unit)?, &points);
    let verdict = py
        .detach(|| assess(&series, &VerdictConfig::default()))
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    let out = PyDict::new(py);
    let kind = match verdict.kind {
        VerdictKind::Leak => "leak",
        VerdictKind::NoLeak => "no_leak",
        VerdictKind::Inconclusive => "inconclusive",
    };
    out.set_item("kind", kind)?;
    out.set_item("label", &verdict.label)?;
    out.set_item("n_samples", verdict.n_samples)?;
    out.set_item("n_analysed", verdict.n_analysed)?;
    out.set_item("slope_per_unit", verdict.slope_per_unit)?;
    out.set_item("ci_low", verdict.ci_low)?;
    out.set_item("ci_high", verdict.ci_high)?;
    out.set_item("p_value", verdict.p_value)?;
    out.set_item("warmup_discarded", verdict.warmup_discarded)?;
    out.set_item("plateau_detected", verdict.plateau_detected)?;
    out.set_item("level", verdict.level)?;
    out.set_item("relative_growth", verdict.relative_growth)?;
    out.set_item("explanation", &verdict.explanation)?;
    Ok(out)
}
