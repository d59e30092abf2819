//! One entry point for every graph output format, with optional use of graphviz.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::dot::to_dot_with;
use crate::error::RenderError;
use crate::graph::RefGraph;
use crate::png::{to_png_with, PngOptions};
use crate::svg::to_svg_with;
use crate::theme::Theme;

/// Output format of a reference graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphFormat {
    /// Graphviz source.
    Dot,
    /// Scalable vector graphics.
    Svg,
    /// Raster image.
    Png,
}

impl GraphFormat {
    /// Format named by a file extension (case-insensitive): `dot`/`gv`, `svg`, `png`.
    pub fn from_extension(extension: &str) -> Option<Self> {
        match extension.to_ascii_lowercase().as_str() {
            "dot" | "gv" => Some(GraphFormat::Dot),
            "svg" => Some(GraphFormat::Svg),
            "png" => Some(GraphFormat::Png),
            _ => None,
        }
    }

    /// Format implied by a file name's extension.
    pub fn from_path(path: &Path) -> Result<Self, RenderError> {
        path.extension()
            .and_then(|e| e.to_str())
            .and_then(Self::from_extension)
            .ok_or_else(|| RenderError::UnknownFormat {
                path: path.to_path_buf(),
            })
    }
}

/// Which renderer produced the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renderer {
    /// heapsight's own layout (SVG) and resvg (PNG); dot output is always this.
    Builtin,
    /// The graphviz `dot` program.
    Graphviz,
}

/// Rendered bytes and who rendered them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// File contents.
    pub bytes: Vec<u8>,
    /// Producer.
    pub renderer: Renderer,
}

/// Options of [`render`].
#[derive(Debug, Clone, PartialEq)]
pub struct RenderOptions {
    /// For SVG and PNG, run graphviz `dot` when it can be found and fall back to the builtin
    /// renderer on any failure (missing program, error exit, timeout, malformed output).
    pub prefer_graphviz: bool,
    /// Program to run instead of looking up `dot` on `PATH`.
    pub graphviz_program: Option<PathBuf>,
    /// How long graphviz may run before it is killed and the builtin renderer used.
    pub graphviz_timeout: Duration,
    /// Color scheme (builtin renderer and dot output).
    pub theme: Theme,
    /// Pixels per unit for builtin PNG output.
    pub png_scale: f32,
    /// Load system fonts for builtin PNG output in addition to the embedded one.
    pub system_fonts: bool,
}

impl Default for RenderOptions {
    fn default() -> Self {
        let png = PngOptions::default();
        Self {
            prefer_graphviz: false,
            graphviz_program: None,
            graphviz_timeout: Duration::from_secs(20),
            theme: png.theme,
            png_scale: png.scale,
            system_fonts: png.system_fonts,
        }
    }
}

/// Renders `graph` in `format`.
pub fn render(
    graph: &RefGraph,
    format: GraphFormat,
    options: &RenderOptions,
) -> Result<Rendered, RenderError> {
    if format != GraphFormat::Dot && options.prefer_graphviz {
        let program = options.graphviz_program.clone().or_else(find_graphviz);
        if let Some(program) = program {
            let source = to_dot_with(graph, options.theme);
            if let Some(bytes) = run_graphviz(&program, &source, format, options.graphviz_timeout) {
                return Ok(Rendered {
                    bytes,
                    renderer: Renderer::Graphviz,
                });
            }
        }
    }
    let bytes = match format {
        GraphFormat::Dot => to_dot_with(graph, options.theme).into_bytes(),
        GraphFormat::Svg => to_svg_with(graph, options.theme).into_bytes(),
        GraphFormat::Png => to_png_with(
            graph,
            &PngOptions {
                theme: options.theme,
                scale: options.png_scale,
                system_fonts: options.system_fonts,
            },
        )?,
    };
    Ok(Rendered {
        bytes,
        renderer: Renderer::Builtin,
    })
}

/// Renders `graph` to `path`, choosing the format from its extension, and reports who rendered
/// it. The file is written whole or not at all (temporary file, then rename).
pub fn render_to_file(
    graph: &RefGraph,
    path: &Path,
    options: &RenderOptions,
) -> Result<Renderer, RenderError> {
    let format = GraphFormat::from_path(path)?;
    let rendered = render(graph, format, options)?;
    let io_error = |source| RenderError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut temp_name = OsString::from(".");
    temp_name.push(path.file_name().unwrap_or_default());
    temp_name.push(format!(".{}.tmp", std::process::id()));
    let temp_path = path.with_file_name(temp_name);
    std::fs::write(&temp_path, &rendered.bytes).map_err(io_error)?;
    if let Err(error) = std::fs::rename(&temp_path, path) {
        let _ = std::fs::remove_file(&temp_path);
        return Err(io_error(error));
    }
    Ok(rendered.renderer)
}

/// Path of graphviz `dot` when it is on `PATH`.
pub fn find_graphviz() -> Option<PathBuf> {
    let path_var = std::env::var_os("PATH")?;
    std::env::split_paths(&path_var)
        .map(|dir| dir.join("dot"))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        path.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    }
    #[cfg(not(unix))]
    {
        path.is_file()
    }
}

/// Runs graphviz on `source`; `None` on any failure so the caller falls back.
fn run_graphviz(
    program: &Path,
    source: &str,
    format: GraphFormat,
    timeout: Duration,
) -> Option<Vec<u8>> {
    let flag = match format {
        GraphFormat::Svg => "-Tsvg",
        GraphFormat::Png => "-Tpng",
        GraphFormat::Dot => return None,
    };
    let mut child = Command::new(program)
        .arg(flag)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    // Feed and drain on threads: a large graph can fill either pipe and deadlock a single thread.
    let mut stdin = child.stdin.take()?;
    let input = source.to_owned();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let mut stdout = child.stdout.take()?;
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        stdout.read_to_end(&mut bytes).map(|_| bytes)
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let wrote = writer.join().ok().map(|r| r.is_ok()).unwrap_or(false);
    let bytes = reader.join().ok()?.ok()?;
    if !status?.success() || !wrote {
        return None;
    }
    let plausible = match format {
        GraphFormat::Png => bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        _ => std::str::from_utf8(&bytes)
            .map(|text| text.contains("<svg"))
            .unwrap_or(false),
    };
    plausible.then_some(bytes)
}
