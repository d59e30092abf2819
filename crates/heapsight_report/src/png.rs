//! PNG output: our SVG rasterized by resvg, with an embedded font so text renders everywhere.

use std::sync::{Arc, OnceLock};

use resvg::tiny_skia::{Pixmap, Transform};
use resvg::usvg::{self, fontdb};

use crate::error::RenderError;
use crate::graph::RefGraph;
use crate::svg::to_svg_with;
use crate::theme::Theme;

/// Largest width or height of a raster image; big graphs are scaled down to fit.
const MAX_SIDE_PX: f64 = 16_384.0;
/// Largest pixel count (64 Mpx, 256 MiB of RGBA) so a huge graph cannot exhaust memory.
const MAX_PIXELS: f64 = 64.0 * 1024.0 * 1024.0;
/// Below this scale text is unreadable, so refusing is more useful than a blur.
const MIN_SCALE: f64 = 0.2;

/// Options of [`to_png_with`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PngOptions {
    /// Color scheme.
    pub theme: Theme,
    /// Pixels per SVG unit; 1.5 by default for crisp text. Reduced automatically for huge graphs.
    pub scale: f32,
    /// Also load the system's fonts (for glyphs DejaVu lacks, e.g. CJK). The embedded DejaVu
    /// Sans Mono is always available; turn this off for byte-identical output across machines.
    pub system_fonts: bool,
}

impl Default for PngOptions {
    fn default() -> Self {
        Self {
            theme: Theme::Light,
            scale: 1.5,
            system_fonts: true,
        }
    }
}

/// Rasterizes `graph` to PNG bytes with default options; see [`to_png_with`].
pub fn to_png(graph: &RefGraph) -> Result<Vec<u8>, RenderError> {
    to_png_with(graph, &PngOptions::default())
}

/// Rasterizes the [`to_svg_with`] rendering of `graph` to PNG bytes.
pub fn to_png_with(graph: &RefGraph, options: &PngOptions) -> Result<Vec<u8>, RenderError> {
    svg_to_png(
        &to_svg_with(graph, options.theme),
        options.scale,
        options.system_fonts,
    )
}

/// Rasterizes an SVG document to PNG bytes at `scale` pixels per unit.
pub fn svg_to_png(svg: &str, scale: f32, system_fonts: bool) -> Result<Vec<u8>, RenderError> {
    let mut usvg_options = usvg::Options {
        fontdb: font_database(system_fonts),
        ..usvg::Options::default()
    };
    usvg_options.font_family = EMBEDDED_FAMILY.to_owned();
    let tree = usvg::Tree::from_str(svg, &usvg_options)
        .map_err(|e| RenderError::SvgParse(e.to_string()))?;
    let size = tree.size();
    let (width, height) = (f64::from(size.width()), f64::from(size.height()));
    let requested = if scale.is_finite() && scale > 0.0 {
        f64::from(scale)
    } else {
        1.0
    };
    let fitted = fit_scale(width, height, requested).ok_or(RenderError::ImageTooLarge {
        width: (width * requested).ceil().min(f64::from(u32::MAX)) as u32,
        height: (height * requested).ceil().min(f64::from(u32::MAX)) as u32,
    })?;
    let px_width = (width * fitted).ceil() as u32;
    let px_height = (height * fitted).ceil() as u32;
    let mut pixmap =
        Pixmap::new(px_width.max(1), px_height.max(1)).ok_or(RenderError::ImageTooLarge {
            width: px_width,
            height: px_height,
        })?;
    resvg::render(
        &tree,
        Transform::from_scale(fitted as f32, fitted as f32),
        &mut pixmap.as_mut(),
    );
    pixmap
        .encode_png()
        .map_err(|e| RenderError::PngEncode(e.to_string()))
}

/// The largest scale not above `requested` that keeps the image within the side and pixel
/// limits, or `None` when that scale would be too small to read.
fn fit_scale(width: f64, height: f64, requested: f64) -> Option<f64> {
    let fitted = requested
        .min(MAX_SIDE_PX / width)
        .min(MAX_SIDE_PX / height)
        .min((MAX_PIXELS / (width * height)).sqrt());
    (fitted >= MIN_SCALE.min(requested)).then_some(fitted)
}

const EMBEDDED_FAMILY: &str = "DejaVu Sans Mono";

/// Font databases are expensive to build (system fonts are scanned and parsed), so each variant
/// is built once per process.
fn font_database(system_fonts: bool) -> Arc<fontdb::Database> {
    static WITH_SYSTEM: OnceLock<Arc<fontdb::Database>> = OnceLock::new();
    static EMBEDDED_ONLY: OnceLock<Arc<fontdb::Database>> = OnceLock::new();
    let cell = if system_fonts {
        &WITH_SYSTEM
    } else {
        &EMBEDDED_ONLY
    };
    cell.get_or_init(|| {
        let mut db = fontdb::Database::new();
        db.load_font_source(fontdb::Source::Binary(Arc::new(
            dejavu::sans_mono::regular(),
        )));
        db.load_font_source(fontdb::Source::Binary(Arc::new(dejavu::sans_mono::bold())));
        if system_fonts {
            db.load_system_fonts();
        }
        // Generic families resolve to the embedded font so metrics match the layout everywhere.
        db.set_monospace_family(EMBEDDED_FAMILY);
        db.set_sans_serif_family(EMBEDDED_FAMILY);
        db.set_serif_family(EMBEDDED_FAMILY);
        Arc::new(db)
    })
    .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_fits_limits() {
        assert_eq!(fit_scale(800.0, 600.0, 1.5), Some(1.5));
        // Too wide for 1.5x: scaled so the width is exactly the side limit.
        assert_eq!(fit_scale(32_768.0, 100.0, 1.5), Some(0.5));
        // Square and large: the pixel budget binds before the side limit.
        let scale = fit_scale(10_000.0, 10_000.0, 1.0).unwrap_or_default();
        assert!((10_000.0 * scale).powi(2) <= MAX_PIXELS + 1.0);
        assert!(scale > 0.8);
        // Unreadably small: refused.
        assert_eq!(fit_scale(200_000.0, 100.0, 1.5), None);
        // A small requested scale is honoured even below the readability floor.
        assert_eq!(fit_scale(100.0, 100.0, 0.1), Some(0.1));
    }
}
