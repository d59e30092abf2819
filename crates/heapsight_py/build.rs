//! Exposes pyo3's interpreter cfgs (`Py_3_10`, `Py_3_12`, `Py_GIL_DISABLED`, ...) to this
//! crate: the capture reads version-specific CPython structs through `pyo3::ffi`.

fn main() {
    pyo3_build_config::use_pyo3_cfgs();
}
