//! Errors of the graph renderers.

use std::path::PathBuf;

use thiserror::Error;

/// Why a graph could not be rendered or written.
#[derive(Debug, Error)]
pub enum RenderError {
    /// The output file name has no extension we can produce.
    #[error(
        "cannot tell the output format from {path:?}: use a .dot, .gv, .svg or .png file name"
    )]
    UnknownFormat {
        /// The offending path.
        path: PathBuf,
    },
    /// usvg rejected the SVG we generated; this is a bug in the SVG writer.
    #[error("internal error: generated SVG could not be parsed: {0}")]
    SvgParse(String),
    /// The raster image would exceed the pixel budget even after scaling down.
    #[error("graph is too large to rasterize ({width}x{height} px)")]
    ImageTooLarge {
        /// Requested width in pixels.
        width: u32,
        /// Requested height in pixels.
        height: u32,
    },
    /// PNG encoding failed.
    #[error("PNG encoding failed: {0}")]
    PngEncode(String),
    /// Writing the output file failed.
    #[error("cannot write {path:?}: {source}")]
    Io {
        /// Destination.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
}
