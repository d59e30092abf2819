//! Colors shared by the dot and SVG writers, so both outputs of one graph look alike.

use crate::graph::NodeKind;

/// Color scheme of rendered graphs. Both themes paint their own background, so a file stays
/// legible whatever the viewer's own light/dark setting is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Theme {
    /// Dark text on light boxes, white background (objgraph's look).
    #[default]
    Light,
    /// Light text on dark boxes, near-black background.
    Dark,
}

/// Fill, outline and text color of one node kind.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NodeColors {
    pub fill: &'static str,
    pub stroke: &'static str,
    pub text: &'static str,
    pub subtext: &'static str,
    pub stroke_width: f64,
}

/// Every color a renderer needs for a theme.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Palette {
    pub background: &'static str,
    pub edge: &'static str,
    pub edge_label: &'static str,
    pub root: NodeColors,
    pub target: NodeColors,
    pub normal: NodeColors,
}

impl Palette {
    pub fn node(&self, kind: NodeKind) -> NodeColors {
        match kind {
            NodeKind::Root => self.root,
            NodeKind::Target => self.target,
            NodeKind::Normal => self.normal,
        }
    }
}

impl Theme {
    pub(crate) fn palette(self) -> Palette {
        match self {
            Theme::Light => Palette {
                background: "#ffffff",
                edge: "#5f6b7a",
                edge_label: "#3d4450",
                root: NodeColors {
                    fill: "#cdeccd",
                    stroke: "#2e7d32",
                    text: "#102a12",
                    subtext: "#2f4f31",
                    stroke_width: 1.5,
                },
                target: NodeColors {
                    fill: "#f9d0d0",
                    stroke: "#c62828",
                    text: "#3b0d0d",
                    subtext: "#6b2a2a",
                    stroke_width: 2.5,
                },
                normal: NodeColors {
                    fill: "#e8eef7",
                    stroke: "#7a8aa0",
                    text: "#1b1f24",
                    subtext: "#4a5360",
                    stroke_width: 1.0,
                },
            },
            Theme::Dark => Palette {
                background: "#1e2227",
                edge: "#9aa5b1",
                edge_label: "#c9d1d9",
                root: NodeColors {
                    fill: "#1f3d26",
                    stroke: "#57ab5a",
                    text: "#e3f6e4",
                    subtext: "#b4d8b6",
                    stroke_width: 1.5,
                },
                target: NodeColors {
                    fill: "#4a1f22",
                    stroke: "#e5534b",
                    text: "#fde8e7",
                    subtext: "#e9b7b4",
                    stroke_width: 2.5,
                },
                normal: NodeColors {
                    fill: "#2d333b",
                    stroke: "#768390",
                    text: "#e6edf3",
                    subtext: "#adbac7",
                    stroke_width: 1.0,
                },
            },
        }
    }
}
