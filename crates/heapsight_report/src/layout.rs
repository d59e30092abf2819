//! Layered (Sugiyama-style) layout of a [`RefGraph`], shared by the SVG and PNG renderers.
//!
//! Steps: break cycles by reversing DFS back edges; assign layers by longest path from the
//! sources (then pull sources down next to their first successor); double the ranks when any
//! edge is labelled so each label gets its own slot between node rows; split long edges with
//! dummy vertices; reduce crossings with barycenter sweeps plus adjacent transpositions; place
//! vertices horizontally by repeated weighted isotonic regression (pool-adjacent-violators),
//! which keeps the order and the minimum separation exactly, so boxes never overlap.
//!
//! Text is measured by character count: the SVG asks for a monospace font whose advance is
//! 0.61 of the font size (DejaVu Sans Mono, embedded for PNG output).

use crate::graph::{EdgeIndex, NodeIndex, NodeKind, RefGraph, RefNode, Resolved};
use crate::text::{display_width, sanitize, truncate, Truncate};

/// Advance width of a monospace glyph, as a fraction of the font size (DejaVu Sans Mono: 0.602).
pub(crate) const CHAR_WIDTH_EM: f64 = 0.61;
/// Font size of node titles, in px.
pub(crate) const TITLE_FONT: f64 = 12.0;
/// Font size of node subtitle lines, in px.
pub(crate) const SUBTITLE_FONT: f64 = 10.5;
/// Font size of edge labels, in px.
pub(crate) const LABEL_FONT: f64 = 10.0;
/// Line height as a multiple of the font size.
pub(crate) const LINE_HEIGHT_EM: f64 = 1.3;
/// Inner padding of node boxes.
pub(crate) const NODE_PAD_X: f64 = 9.0;
pub(crate) const NODE_PAD_Y: f64 = 5.0;

const MAX_TITLE_CELLS: usize = 44;
const MAX_SUBTITLE_CELLS: usize = 44;
const MAX_SUBTITLE_LINES: usize = 3;
const MAX_LABEL_CELLS: usize = 32;
const MIN_NODE_WIDTH: f64 = 44.0;
const MARGIN: f64 = 16.0;
const REAL_GAP: f64 = 22.0;
const DUMMY_GAP: f64 = 10.0;
const DUMMY_WIDTH: f64 = 8.0;
/// Where the edge line runs inside a label slot, from the slot's left edge.
const LABEL_LINE_INSET: f64 = 4.0;
/// Space between the edge line and the label text.
const LABEL_TEXT_GAP: f64 = 5.0;
const LABEL_RIGHT_PAD: f64 = 4.0;
/// Horizontal reach of a self-loop beyond the right side of its box.
const LOOP_REACH: f64 = 26.0;
/// Vertical gap between rank bands when every other rank holds edge labels.
const LABELLED_RANK_GAP: f64 = 16.0;
/// Vertical gap between rank bands when there are no labels.
const PLAIN_RANK_GAP: f64 = 40.0;
const CROSSING_SWEEPS: usize = 24;
/// Crossing reduction stops after this many sweeps without a new best ordering.
const PATIENCE_SWEEPS: usize = 4;
/// Bounds sweeps × vertices so graphs with thousands of vertices stay interactive.
const SWEEP_WORK_BUDGET: usize = 1_500_000;
const PLACEMENT_ROUNDS: usize = 8;
/// Spacing of edge ports along a box side.
const PORT_SPACING: f64 = 10.0;

/// A point in SVG user units (px), y growing downwards.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Horizontal coordinate.
    pub x: f64,
    /// Vertical coordinate.
    pub y: f64,
}

/// An axis-aligned rectangle; `(x, y)` is the top-left corner.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rect {
    /// Left edge.
    pub x: f64,
    /// Top edge.
    pub y: f64,
    /// Width.
    pub width: f64,
    /// Height.
    pub height: f64,
}

impl Rect {
    /// Right edge.
    pub fn right(&self) -> f64 {
        self.x + self.width
    }

    /// Bottom edge.
    pub fn bottom(&self) -> f64 {
        self.y + self.height
    }

    /// Whether the interiors of the two rectangles overlap (touching edges do not count).
    pub fn intersects(&self, other: &Rect) -> bool {
        self.x < other.right()
            && other.x < self.right()
            && self.y < other.bottom()
            && other.y < self.bottom()
    }
}

/// A node box with the (sanitized, truncated) text it shows.
#[derive(Debug, Clone, PartialEq)]
pub struct PlacedNode {
    /// Which input node this is.
    pub node: NodeIndex,
    /// Emphasis, copied from the input.
    pub kind: NodeKind,
    /// The box.
    pub rect: Rect,
    /// Title line.
    pub title: String,
    /// Subtitle lines (possibly none).
    pub subtitle: Vec<String>,
}

/// An edge label: text whose baseline box is `rect` (text starts at `rect.x`).
#[derive(Debug, Clone, PartialEq)]
pub struct PlacedLabel {
    /// Area the text occupies.
    pub rect: Rect,
    /// Sanitized, truncated label text.
    pub text: String,
}

/// How an edge is drawn.
#[derive(Debug, Clone, PartialEq)]
pub enum EdgeRoute {
    /// Waypoints from the referrer's box side to the referent's box side; consecutive points are
    /// joined by cubic curves with vertical tangents.
    Polyline(Vec<Point>),
    /// A loop on the right side of a box: start, two control points, end (one cubic curve).
    SelfLoop([Point; 4]),
}

/// A routed edge.
#[derive(Debug, Clone, PartialEq)]
pub struct PlacedEdge {
    /// The input edge (for merged self-loops, the first of them).
    pub edge: EdgeIndex,
    /// Geometry, ending at the referent.
    pub route: EdgeRoute,
    /// Label, if the edge has one.
    pub label: Option<PlacedLabel>,
}

/// A complete layout; all coordinates are non-negative and within `width` × `height`.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// Node boxes, one per distinct input node, in input order.
    pub nodes: Vec<PlacedNode>,
    /// Routed edges.
    pub edges: Vec<PlacedEdge>,
    /// Canvas width.
    pub width: f64,
    /// Canvas height.
    pub height: f64,
}

/// Text lines of a node box: the title (middle-truncated, since qualified names matter at both
/// ends) followed by up to three subtitle lines.
pub(crate) fn node_lines(node: &RefNode) -> Vec<String> {
    let mut lines =
        vec![truncate(&sanitize(&node.title), MAX_TITLE_CELLS, Truncate::Middle).into_owned()];
    lines.extend(
        node.subtitle
            .split('\n')
            .filter(|line| !line.is_empty())
            .take(MAX_SUBTITLE_LINES)
            .map(|line| truncate(&sanitize(line), MAX_SUBTITLE_CELLS, Truncate::End).into_owned()),
    );
    lines
}

/// The displayed form of an edge label.
pub(crate) fn edge_label_text(label: &str) -> String {
    truncate(&sanitize(label), MAX_LABEL_CELLS, Truncate::End).into_owned()
}

pub(crate) fn text_width(text: &str, font_size: f64) -> f64 {
    display_width(text) as f64 * font_size * CHAR_WIDTH_EM
}

/// Index of a layout vertex (real node or dummy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct VertexId(u32);

impl VertexId {
    fn index(self) -> usize {
        self.0 as usize
    }

    fn from_index(index: usize) -> Self {
        VertexId(u32::try_from(index).unwrap_or(u32::MAX))
    }
}

/// Neighbour lists of all vertices in one flat array (compressed sparse rows): crossing
/// reduction scans them millions of times on big graphs, where a `Vec` per vertex thrashes
/// the cache.
struct Adjacency {
    offsets: Vec<usize>,
    targets: Vec<VertexId>,
}

impl Adjacency {
    fn new(vertex_count: usize, pairs: impl Iterator<Item = (VertexId, VertexId)> + Clone) -> Self {
        let mut offsets = vec![0usize; vertex_count + 1];
        for (from, _) in pairs.clone() {
            offsets[from.index() + 1] += 1;
        }
        for i in 0..vertex_count {
            offsets[i + 1] += offsets[i];
        }
        let mut fill = offsets.clone();
        let mut targets = vec![VertexId(0); offsets[vertex_count]];
        // Pairs are placed in iteration order, so each list keeps the input edge order.
        for (from, to) in pairs {
            targets[fill[from.index()]] = to;
            fill[from.index()] += 1;
        }
        Adjacency { offsets, targets }
    }
}

impl std::ops::Index<VertexId> for Adjacency {
    type Output = [VertexId];

    fn index(&self, vertex: VertexId) -> &[VertexId] {
        &self.targets[self.offsets[vertex.index()]..self.offsets[vertex.index() + 1]]
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum VertexKind {
    /// Position in `Resolved::nodes`.
    Real(usize),
    Dummy,
    /// Dummy carrying the label of chain `usize`.
    Label(usize),
}

#[derive(Debug, Clone)]
struct Vertex {
    kind: VertexKind,
    rank: usize,
    /// Reserved width (box plus self-loop area for real vertices).
    width: f64,
    height: f64,
    /// Where edges attach, relative to the center of the reserved width.
    anchor_offset: f64,
    /// Center of the reserved width.
    x: f64,
    /// Initial ordering key.
    seed: usize,
}

impl Vertex {
    fn anchor(&self) -> f64 {
        self.x + self.anchor_offset
    }

    fn is_real(&self) -> bool {
        matches!(self.kind, VertexKind::Real(_))
    }
}

/// One non-loop edge, as a path of vertices in layout (downward) direction.
struct Chain {
    edge: EdgeIndex,
    /// True when the edge points upwards (it was a DFS back edge).
    reversed: bool,
    vertices: Vec<VertexId>,
    label: Option<(VertexId, String)>,
}

/// Per real vertex: box size and the self-loop, if any.
struct RealBox {
    width: f64,
    height: f64,
    lines: Vec<String>,
    self_loop: Option<(EdgeIndex, String)>,
}

/// Computes a deterministic layered layout of `graph`.
pub fn layout(graph: &RefGraph) -> Layout {
    let resolved = Resolved::new(graph);
    let node_count = resolved.nodes.len();

    let mut boxes: Vec<RealBox> = resolved
        .nodes
        .iter()
        .map(|&index| {
            let node = &graph.nodes[index.index()];
            let lines = node_lines(node);
            let text_w = lines
                .iter()
                .enumerate()
                .map(|(i, line)| text_width(line, if i == 0 { TITLE_FONT } else { SUBTITLE_FONT }))
                .fold(0.0, f64::max);
            let height = 2.0 * NODE_PAD_Y
                + TITLE_FONT * LINE_HEIGHT_EM
                + (lines.len() - 1) as f64 * SUBTITLE_FONT * LINE_HEIGHT_EM;
            RealBox {
                width: (text_w + 2.0 * NODE_PAD_X).max(MIN_NODE_WIDTH).ceil(),
                height: height.ceil(),
                lines,
                self_loop: None,
            }
        })
        .collect();

    // Self-loops are drawn beside their node; several on one node share one loop and label.
    let mut links: Vec<(EdgeIndex, usize, usize)> = Vec::with_capacity(resolved.edges.len());
    for &(edge, from, to) in &resolved.edges {
        if from == to {
            let text = edge_label_text(&graph.edges[edge.index()].label);
            match &mut boxes[from].self_loop {
                Some((_, existing)) => {
                    if !text.is_empty() {
                        if !existing.is_empty() {
                            existing.push_str(", ");
                        }
                        existing.push_str(&text);
                        *existing = truncate(existing, MAX_LABEL_CELLS, Truncate::End).into_owned();
                    }
                }
                None => boxes[from].self_loop = Some((edge, text)),
            }
        } else {
            links.push((edge, from, to));
        }
    }

    let (reversed, discovery) = break_cycles(node_count, &links, graph, &resolved);
    let layers = assign_layers(node_count, &links, &reversed);
    let labelled = links
        .iter()
        .any(|&(edge, _, _)| !edge_label_text(&graph.edges[edge.index()].label).is_empty());
    let rank_scale = if labelled { 2 } else { 1 };

    let mut vertices: Vec<Vertex> = (0..node_count)
        .map(|slot| {
            let real = &boxes[slot];
            let loop_extra = match &real.self_loop {
                None => 0.0,
                Some((_, text)) if text.is_empty() => LOOP_REACH + 4.0,
                Some((_, text)) => LOOP_REACH + 4.0 + text_width(text, LABEL_FONT) + 4.0,
            };
            Vertex {
                kind: VertexKind::Real(slot),
                rank: layers[slot] * rank_scale,
                width: real.width + loop_extra,
                height: real.height,
                anchor_offset: -loop_extra / 2.0,
                x: 0.0,
                seed: discovery[slot],
            }
        })
        .collect();

    let mut chains: Vec<Chain> = Vec::with_capacity(links.len());
    for (link_index, &(edge, from, to)) in links.iter().enumerate() {
        let is_reversed = reversed[link_index];
        let (top, bottom) = if is_reversed { (to, from) } else { (from, to) };
        let chain_index = chains.len();
        let top_rank = vertices[top].rank;
        let bottom_rank = vertices[bottom].rank;
        let text = edge_label_text(&graph.edges[edge.index()].label);
        // The label sits next to the referrer: below it for downward edges, above it for upward.
        let label_rank = if text.is_empty() {
            None
        } else if is_reversed {
            Some(bottom_rank - 1)
        } else {
            Some(top_rank + 1)
        };
        let mut path = vec![VertexId::from_index(top)];
        let mut label = None;
        for rank in top_rank + 1..bottom_rank {
            let id = VertexId::from_index(vertices.len());
            let vertex = if Some(rank) == label_rank {
                let width = LABEL_LINE_INSET
                    + LABEL_TEXT_GAP
                    + text_width(&text, LABEL_FONT)
                    + LABEL_RIGHT_PAD;
                label = Some((id, text.clone()));
                Vertex {
                    kind: VertexKind::Label(chain_index),
                    rank,
                    width,
                    height: LABEL_FONT * LINE_HEIGHT_EM,
                    anchor_offset: -width / 2.0 + LABEL_LINE_INSET,
                    x: 0.0,
                    seed: discovery[from],
                }
            } else {
                Vertex {
                    kind: VertexKind::Dummy,
                    rank,
                    width: DUMMY_WIDTH,
                    height: 0.0,
                    anchor_offset: 0.0,
                    x: 0.0,
                    seed: discovery[from],
                }
            };
            vertices.push(vertex);
            path.push(id);
        }
        path.push(VertexId::from_index(bottom));
        chains.push(Chain {
            edge,
            reversed: is_reversed,
            vertices: path,
            label,
        });
    }

    let rank_count = vertices.iter().map(|v| v.rank + 1).max().unwrap_or(0);
    let segments = || {
        chains
            .iter()
            .flat_map(|chain| chain.vertices.windows(2).map(|pair| (pair[0], pair[1])))
    };
    let down = Adjacency::new(vertices.len(), segments());
    let up = Adjacency::new(vertices.len(), segments().map(|(a, b)| (b, a)));

    let mut ranks: Vec<Vec<VertexId>> = vec![Vec::new(); rank_count];
    for (index, vertex) in vertices.iter().enumerate() {
        ranks[vertex.rank].push(VertexId::from_index(index));
    }
    for rank in &mut ranks {
        rank.sort_by_key(|&v| (vertices[v.index()].seed, v));
    }
    let ranks = reduce_crossings(ranks, &up, &down, vertices.len());
    assign_x(&mut vertices, &ranks, &up, &down);
    let bands = assign_bands(&vertices, &ranks, labelled);

    // Shift everything so the leftmost reserved area starts at the margin.
    let min_left = vertices
        .iter()
        .map(|v| v.x - v.width / 2.0)
        .fold(f64::INFINITY, f64::min);
    let shift = if min_left.is_finite() {
        MARGIN - min_left
    } else {
        0.0
    };
    for vertex in &mut vertices {
        vertex.x += shift;
    }
    let width = vertices
        .iter()
        .map(|v| v.x + v.width / 2.0)
        .fold(0.0, f64::max)
        + MARGIN;
    let height = bands.last().map_or(MARGIN, |band| band.bottom) + MARGIN;

    let band_center = |v: &Vertex| (bands[v.rank].top + bands[v.rank].bottom) / 2.0;
    let box_of = |slot: usize| -> Rect {
        let vertex = &vertices[slot];
        let real = &boxes[slot];
        let center_y = band_center(vertex);
        Rect {
            x: vertex.x - vertex.width / 2.0,
            y: center_y - real.height / 2.0,
            width: real.width,
            height: real.height,
        }
    };

    let ports = assign_ports(&vertices, &chains);

    let mut placed_edges = Vec::with_capacity(chains.len() + node_count);
    for (chain_index, chain) in chains.iter().enumerate() {
        let mut points = Vec::with_capacity(chain.vertices.len() * 2);
        let first = chain.vertices[0].index();
        let last = chain.vertices[chain.vertices.len() - 1].index();
        let first_box = box_of(first);
        let last_box = box_of(last);
        // Boxes shorter than their band leave and enter it vertically, so the bend happens
        // between bands and cannot cut through a taller neighbour.
        let (start_x, end_x) = ports[chain_index];
        points.push(Point {
            x: start_x,
            y: first_box.bottom(),
        });
        let first_band_bottom = bands[vertices[first].rank].bottom;
        if first_band_bottom > first_box.bottom() {
            points.push(Point {
                x: start_x,
                y: first_band_bottom,
            });
        }
        for &id in &chain.vertices[1..chain.vertices.len() - 1] {
            let vertex = &vertices[id.index()];
            // Run straight down through the whole band so the line passes beside the boxes
            // of that rank instead of bending around them; bends happen between bands.
            let Band { top, bottom } = bands[vertex.rank];
            let x = vertex.anchor();
            points.push(Point { x, y: top });
            if bottom > top {
                points.push(Point { x, y: bottom });
            }
        }
        let last_band_top = bands[vertices[last].rank].top;
        if last_band_top < last_box.y {
            points.push(Point {
                x: end_x,
                y: last_band_top,
            });
        }
        points.push(Point {
            x: end_x,
            y: last_box.y,
        });
        if chain.reversed {
            points.reverse();
        }
        let label = chain.label.as_ref().map(|(id, text)| {
            let vertex = &vertices[id.index()];
            let center = band_center(vertex);
            PlacedLabel {
                rect: Rect {
                    x: vertex.anchor() + LABEL_TEXT_GAP,
                    y: center - vertex.height / 2.0,
                    width: text_width(text, LABEL_FONT),
                    height: vertex.height,
                },
                text: text.clone(),
            }
        });
        placed_edges.push(PlacedEdge {
            edge: chain.edge,
            route: EdgeRoute::Polyline(points),
            label,
        });
    }

    let mut placed_nodes = Vec::with_capacity(node_count);
    for (slot, &node_index) in resolved.nodes.iter().enumerate() {
        let rect = box_of(slot);
        let real = &boxes[slot];
        if let Some((edge, text)) = &real.self_loop {
            let cy = rect.y + rect.height / 2.0;
            let spread = (rect.height / 2.0 - 3.0).clamp(2.0, 7.0);
            let start = Point {
                x: rect.right(),
                y: cy - spread,
            };
            let end = Point {
                x: rect.right(),
                y: cy + spread,
            };
            let route = EdgeRoute::SelfLoop([
                start,
                Point {
                    x: rect.right() + LOOP_REACH,
                    y: cy - spread - 12.0,
                },
                Point {
                    x: rect.right() + LOOP_REACH,
                    y: cy + spread + 12.0,
                },
                end,
            ]);
            let label = (!text.is_empty()).then(|| {
                let label_height = LABEL_FONT * LINE_HEIGHT_EM;
                PlacedLabel {
                    rect: Rect {
                        x: rect.right() + LOOP_REACH + 4.0,
                        y: cy - label_height / 2.0,
                        width: text_width(text, LABEL_FONT),
                        height: label_height,
                    },
                    text: text.clone(),
                }
            });
            placed_edges.push(PlacedEdge {
                edge: *edge,
                route,
                label,
            });
        }
        placed_nodes.push(PlacedNode {
            node: node_index,
            kind: graph.nodes[node_index.index()].kind,
            rect,
            title: real.lines[0].clone(),
            subtitle: real.lines[1..].to_vec(),
        });
    }

    Layout {
        nodes: placed_nodes,
        edges: placed_edges,
        width: width.max(2.0 * MARGIN).ceil(),
        height: height.max(2.0 * MARGIN).ceil(),
    }
}

/// Marks DFS back edges (to be reversed) and returns each node's DFS discovery index.
/// DFS starts from roots, then from nodes without incoming edges, then from anything left, so
/// edges out of roots are never the ones reversed.
fn break_cycles(
    node_count: usize,
    links: &[(EdgeIndex, usize, usize)],
    graph: &RefGraph,
    resolved: &Resolved,
) -> (Vec<bool>, Vec<usize>) {
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); node_count];
    let mut in_degree = vec![0usize; node_count];
    for (link_index, &(_, from, to)) in links.iter().enumerate() {
        out[from].push(link_index);
        in_degree[to] += 1;
    }
    let is_root = |slot: usize| graph.nodes[resolved.nodes[slot].index()].kind == NodeKind::Root;
    let starts = (0..node_count)
        .filter(|&s| is_root(s))
        .chain((0..node_count).filter(|&s| !is_root(s) && in_degree[s] == 0))
        .chain(0..node_count);

    #[derive(Clone, Copy, PartialEq)]
    enum State {
        New,
        OnStack,
        Done,
    }
    let mut state = vec![State::New; node_count];
    let mut reversed = vec![false; links.len()];
    let mut discovery = vec![0usize; node_count];
    let mut next_discovery = 0;
    let mut stack: Vec<(usize, usize)> = Vec::new();
    for start in starts {
        if state[start] != State::New {
            continue;
        }
        state[start] = State::OnStack;
        discovery[start] = next_discovery;
        next_discovery += 1;
        stack.push((start, 0));
        while let Some(&mut (node, ref mut cursor)) = stack.last_mut() {
            if let Some(&link_index) = out[node].get(*cursor) {
                *cursor += 1;
                let target = links[link_index].2;
                match state[target] {
                    State::OnStack => reversed[link_index] = true,
                    State::Done => {}
                    State::New => {
                        state[target] = State::OnStack;
                        discovery[target] = next_discovery;
                        next_discovery += 1;
                        stack.push((target, 0));
                    }
                }
            } else {
                state[node] = State::Done;
                stack.pop();
            }
        }
    }
    (reversed, discovery)
}

/// Longest-path layering of the acyclic orientation, then sources moved down to sit just above
/// their highest successor so roots do not float far above what they reference.
fn assign_layers(
    node_count: usize,
    links: &[(EdgeIndex, usize, usize)],
    reversed: &[bool],
) -> Vec<usize> {
    let mut succ: Vec<Vec<usize>> = vec![Vec::new(); node_count];
    let mut in_degree = vec![0usize; node_count];
    for (link_index, &(_, from, to)) in links.iter().enumerate() {
        let (a, b) = if reversed[link_index] {
            (to, from)
        } else {
            (from, to)
        };
        succ[a].push(b);
        in_degree[b] += 1;
    }
    let sources: Vec<bool> = in_degree.iter().map(|&d| d == 0).collect();
    let mut layer = vec![0usize; node_count];
    let mut remaining = in_degree;
    let mut queue: std::collections::VecDeque<usize> =
        (0..node_count).filter(|&n| remaining[n] == 0).collect();
    let mut topo = Vec::with_capacity(node_count);
    while let Some(node) = queue.pop_front() {
        topo.push(node);
        for &next in &succ[node] {
            layer[next] = layer[next].max(layer[node] + 1);
            remaining[next] -= 1;
            if remaining[next] == 0 {
                queue.push_back(next);
            }
        }
    }
    for node in 0..node_count {
        if sources[node] {
            if let Some(min_succ) = succ[node].iter().map(|&s| layer[s]).min() {
                layer[node] = min_succ.saturating_sub(1);
            }
        }
    }
    // Pulling sources down can leave the top layers empty; renumber so layer 0 is used.
    let min_layer = layer.iter().copied().min().unwrap_or(0);
    for value in &mut layer {
        *value -= min_layer;
    }
    layer
}

/// Barycenter sweeps alternating direction, each followed by adjacent transpositions; keeps the
/// ordering with the fewest crossings seen.
fn reduce_crossings(
    mut ranks: Vec<Vec<VertexId>>,
    up: &Adjacency,
    down: &Adjacency,
    vertex_count: usize,
) -> Vec<Vec<VertexId>> {
    let mut position = vec![0usize; vertex_count];
    let refresh = |ranks: &[Vec<VertexId>], position: &mut [usize]| {
        for rank in ranks {
            for (i, v) in rank.iter().enumerate() {
                position[v.index()] = i;
            }
        }
    };
    refresh(&ranks, &mut position);
    let mut best = ranks.clone();
    let mut best_crossings = total_crossings(&ranks, down, &position);
    let sweeps = (SWEEP_WORK_BUDGET / vertex_count.max(1)).clamp(2, CROSSING_SWEEPS);
    let mut since_best = 0;
    for sweep in 0..sweeps {
        if best_crossings == 0 || since_best >= PATIENCE_SWEEPS {
            break;
        }
        let downward = sweep % 2 == 0;
        let order: Vec<usize> = if downward {
            (1..ranks.len()).collect()
        } else {
            (0..ranks.len().saturating_sub(1)).rev().collect()
        };
        for r in order {
            let neighbours = if downward { up } else { down };
            let mut keyed: Vec<(f64, usize, VertexId)> = ranks[r]
                .iter()
                .map(|&v| {
                    let adjacent = &neighbours[v];
                    let key = if adjacent.is_empty() {
                        position[v.index()] as f64
                    } else {
                        adjacent
                            .iter()
                            .map(|u| position[u.index()] as f64)
                            .sum::<f64>()
                            / adjacent.len() as f64
                    };
                    (key, position[v.index()], v)
                })
                .collect();
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            ranks[r] = keyed.into_iter().map(|(_, _, v)| v).collect();
            for (i, v) in ranks[r].iter().enumerate() {
                position[v.index()] = i;
            }
        }
        transpose(&mut ranks, up, down, &mut position);
        let crossings = total_crossings(&ranks, down, &position);
        if crossings < best_crossings {
            best_crossings = crossings;
            best = ranks.clone();
            since_best = 0;
        } else {
            since_best += 1;
        }
    }
    best
}

/// Swaps neighbours within a rank while that lowers the crossings they are involved in.
fn transpose(
    ranks: &mut [Vec<VertexId>],
    up: &Adjacency,
    down: &Adjacency,
    position: &mut [usize],
) {
    // Bounded so pathological inputs cannot spin; each productive pass strictly lowers crossings.
    for _ in 0..4 {
        let mut improved = false;
        for rank in ranks.iter_mut() {
            for i in 0..rank.len().saturating_sub(1) {
                let (v, w) = (rank[i], rank[i + 1]);
                let current = pair_crossings(v, w, up, down, position);
                let swapped = pair_crossings(w, v, up, down, position);
                if swapped < current {
                    rank.swap(i, i + 1);
                    position[v.index()] = i + 1;
                    position[w.index()] = i;
                    improved = true;
                }
            }
        }
        if !improved {
            break;
        }
    }
}

/// Crossings among edges of `left` and `right` (with `left` placed before `right`).
fn pair_crossings(
    left: VertexId,
    right: VertexId,
    up: &Adjacency,
    down: &Adjacency,
    position: &[usize],
) -> usize {
    let mut count = 0;
    for adjacency in [up, down] {
        for a in &adjacency[left] {
            for b in &adjacency[right] {
                if position[a.index()] > position[b.index()] {
                    count += 1;
                }
            }
        }
    }
    count
}

/// Edge crossings between all adjacent rank pairs, counted as inversions with a Fenwick tree.
fn total_crossings(ranks: &[Vec<VertexId>], down: &Adjacency, position: &[usize]) -> usize {
    let mut total = 0;
    for r in 0..ranks.len().saturating_sub(1) {
        let mut segments: Vec<(usize, usize)> = ranks[r]
            .iter()
            .flat_map(|v| {
                down[*v]
                    .iter()
                    .map(move |w| (position[v.index()], position[w.index()]))
            })
            .collect();
        segments.sort_unstable();
        let size = ranks[r + 1].len();
        let mut tree = vec![0usize; size + 1];
        for (inserted, &(_, lower)) in segments.iter().enumerate() {
            // Count already inserted segments whose lower end lies strictly to the right.
            let mut not_greater = 0;
            let mut i = lower + 1;
            while i > 0 {
                not_greater += tree[i];
                i -= i & i.wrapping_neg();
            }
            total += inserted - not_greater;
            let mut i = lower + 1;
            while i <= size {
                tree[i] += 1;
                i += i & i.wrapping_neg();
            }
        }
    }
    total
}

fn separation(a: &Vertex, b: &Vertex) -> f64 {
    let gap = if a.is_real() && b.is_real() {
        REAL_GAP
    } else {
        DUMMY_GAP
    };
    a.width / 2.0 + b.width / 2.0 + gap
}

/// Horizontal placement: every vertex is pulled towards the mean anchor of its neighbours in the
/// layer above, then below, then both; each rank is solved exactly for order and separation.
fn assign_x(vertices: &mut [Vertex], ranks: &[Vec<VertexId>], up: &Adjacency, down: &Adjacency) {
    for rank in ranks {
        let mut cursor = 0.0;
        for (i, v) in rank.iter().enumerate() {
            if i > 0 {
                cursor += separation(&vertices[rank[i - 1].index()], &vertices[v.index()]);
            }
            vertices[v.index()].x = cursor;
        }
    }
    let both = Adjacency::new(
        vertices.len(),
        (0..vertices.len())
            .map(VertexId::from_index)
            .flat_map(|v| up[v].iter().chain(&down[v]).map(move |&w| (v, w))),
    );
    for _ in 0..PLACEMENT_ROUNDS {
        for rank in ranks.iter().skip(1) {
            place_rank(vertices, rank, up);
        }
        for rank in ranks.iter().rev().skip(1) {
            place_rank(vertices, rank, down);
        }
    }
    for rank in ranks {
        place_rank(vertices, rank, &both);
    }
}

/// Places one rank as close as possible (weighted least squares) to the desired positions while
/// keeping order and separations: substituting `y_i = x_i - offset_i` turns this into isotonic
/// regression, solved exactly by pool-adjacent-violators.
fn place_rank(vertices: &mut [Vertex], rank: &[VertexId], neighbours: &Adjacency) {
    if rank.is_empty() {
        return;
    }
    let mut offsets = Vec::with_capacity(rank.len());
    let mut offset = 0.0;
    for (i, v) in rank.iter().enumerate() {
        if i > 0 {
            offset += separation(&vertices[rank[i - 1].index()], &vertices[v.index()]);
        }
        offsets.push(offset);
    }
    // Blocks of pooled vertices: (total weight, weighted sum of targets, count).
    let mut blocks: Vec<(f64, f64, usize)> = Vec::with_capacity(rank.len());
    for (i, v) in rank.iter().enumerate() {
        let vertex = &vertices[v.index()];
        let adjacent = &neighbours[*v];
        let desired = if adjacent.is_empty() {
            vertex.x
        } else {
            adjacent
                .iter()
                .map(|u| vertices[u.index()].anchor())
                .sum::<f64>()
                / adjacent.len() as f64
                - vertex.anchor_offset
        };
        // Dummies weigh more so long edges stay straight; busy nodes weigh more than leaves.
        let weight = if vertex.is_real() {
            adjacent.len().max(1) as f64
        } else {
            8.0
        };
        blocks.push((weight, weight * (desired - offsets[i]), 1));
        while blocks.len() >= 2 {
            let (w2, s2, c2) = blocks[blocks.len() - 1];
            let (w1, s1, c1) = blocks[blocks.len() - 2];
            if s1 / w1 <= s2 / w2 {
                break;
            }
            blocks.pop();
            let merged = blocks.len() - 1;
            blocks[merged] = (w1 + w2, s1 + s2, c1 + c2);
        }
    }
    let mut i = 0;
    for (weight, sum, count) in blocks {
        let level = sum / weight;
        for _ in 0..count {
            vertices[rank[i].index()].x = level + offsets[i];
            i += 1;
        }
    }
}

fn band_height(vertices: &[Vertex], rank: &[VertexId]) -> f64 {
    rank.iter()
        .map(|v| vertices[v.index()].height)
        .fold(0.0, f64::max)
}

/// Vertical extent of one rank: as tall as its tallest vertex.
#[derive(Debug, Clone, Copy)]
struct Band {
    top: f64,
    bottom: f64,
}

/// Stacks the rank bands top to bottom.
fn assign_bands(vertices: &[Vertex], ranks: &[Vec<VertexId>], labelled: bool) -> Vec<Band> {
    let gap = if labelled {
        LABELLED_RANK_GAP
    } else {
        PLAIN_RANK_GAP
    };
    let mut bands = Vec::with_capacity(ranks.len());
    let mut y = MARGIN;
    for (r, rank) in ranks.iter().enumerate() {
        if r > 0 {
            y += gap;
        }
        let top = y;
        y += band_height(vertices, rank);
        bands.push(Band { top, bottom: y });
    }
    bands
}

/// Attachment x of each chain at its top and bottom real vertex: edges leaving (or entering)
/// the same box are spread around its center, ordered by where they go, so they do not overlap.
fn assign_ports(vertices: &[Vertex], chains: &[Chain]) -> Vec<(f64, f64)> {
    let mut ports: Vec<(f64, f64)> = vec![(0.0, 0.0); chains.len()];
    let mut leaving: Vec<Vec<(f64, usize)>> = vec![Vec::new(); vertices.len()];
    let mut entering: Vec<Vec<(f64, usize)>> = vec![Vec::new(); vertices.len()];
    for (index, chain) in chains.iter().enumerate() {
        let n = chain.vertices.len();
        let top = chain.vertices[0].index();
        let bottom = chain.vertices[n - 1].index();
        leaving[top].push((vertices[chain.vertices[1].index()].anchor(), index));
        entering[bottom].push((vertices[chain.vertices[n - 2].index()].anchor(), index));
    }
    for (slot, vertex) in vertices.iter().enumerate() {
        if !vertex.is_real() {
            continue;
        }
        let box_width = vertex.width + 2.0 * vertex.anchor_offset;
        for (side, list) in [(0, &mut leaving[slot]), (1, &mut entering[slot])] {
            list.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let count = list.len();
            let spacing = if count > 1 {
                PORT_SPACING.min((box_width - 2.0 * NODE_PAD_X).max(0.0) / (count - 1) as f64)
            } else {
                0.0
            };
            for (i, &(_, chain)) in list.iter().enumerate() {
                let x = vertex.anchor() + (i as f64 - (count as f64 - 1.0) / 2.0) * spacing;
                if side == 0 {
                    ports[chain].0 = x;
                } else {
                    ports[chain].1 = x;
                }
            }
        }
    }
    ports
}
