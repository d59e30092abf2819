//! The CLI runs without the GIL; commands implemented in Python re-take it here.

use pyo3::prelude::*;

/// Runs Python-side commands through `heapsight._commands.run(name, args)`.
pub struct PythonHost;

impl heapsight_cli::Host for PythonHost {
    fn run_python_command(&self, name: &str, args: &[String]) -> anyhow::Result<i32> {
        Python::attach(|py| {
            let commands = py.import("heapsight._commands")?;
            commands
                .call_method1("run", (name, args.to_vec()))?
                .extract::<i32>()
        })
        .map_err(|err| anyhow::anyhow!("`heapsight {name}` failed: {err}"))
    }
}

/// Runs the `heapsight` command line with `argv` (program name first); returns the exit status.
#[pyfunction]
pub fn run_cli(py: Python<'_>, argv: Vec<String>) -> i32 {
    py.detach(|| heapsight_cli::run(argv, &PythonHost))
}
