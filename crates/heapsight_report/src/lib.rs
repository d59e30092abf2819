//! heapsight_report: renderers that are pure functions of their input data.
//!
//! - Reference graphs ([`RefGraph`]) as graphviz source ([`to_dot`]), SVG from a builtin layered
//!   layout ([`to_svg`], [`layout()`]) and PNG rasterized with resvg and an embedded font
//!   ([`to_png`]); [`render`] / [`render_to_file`] pick the format and can prefer graphviz.
//! - The self-contained HTML report ([`to_html`]): verdict, charts, suspects with their
//!   retainer graphs, sortable tables; one file that works offline.
//! - Terminal tables ([`Table`], [`Style`]) and human-readable numbers ([`format_bytes`],
//!   [`format_count`]).
//!
//! Nothing here reads snapshots or runs analyses; callers build the input structures.

mod dot;
mod error;
mod format;
mod graph;
mod html;
pub mod layout;
mod png;
mod render;
mod svg;
pub mod table;
pub mod text;
mod theme;

pub use dot::{to_dot, to_dot_with};
pub use error::RenderError;
pub use format::{format_bytes, format_bytes_delta, format_count, format_count_delta};
pub use graph::{
    EdgeIndex, GraphError, NodeIndex, NodeKind, RefEdge, RefGraph, RefNode, RefNodeId,
};
pub use html::{to_html, to_html_from_json, HtmlInput};
pub use layout::{layout, Layout};
pub use png::{svg_to_png, to_png, to_png_with, PngOptions};
pub use render::{
    find_graphviz, render, render_to_file, GraphFormat, RenderOptions, Rendered, Renderer,
};
pub use svg::{layout_to_svg, to_svg, to_svg_with};
pub use table::{Align, Cell, Column, Paint, RowWidthError, Style, Table};
pub use text::Truncate;
pub use theme::Theme;
