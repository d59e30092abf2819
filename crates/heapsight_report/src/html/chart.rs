//! Inline SVG charts for the HTML report: line charts over requests or time (one line per
//! worker or type, one shaded band per endpoint), horizontal bar charts and sparklines.
//! Colors come from CSS classes (`c0`..`c7`, `band`, `axis`), so the page's light and dark
//! themes apply to them.

use std::fmt::Write as _;

use crate::text::{truncate, xml_escape, Truncate};

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 250.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 168.0;
const TOP: f64 = 26.0;
const BOTTOM: f64 = 40.0;
/// Series colors cycle through this many CSS classes.
pub(crate) const COLORS: usize = 8;
/// Points drawn as dots up to this many per line; beyond, the line alone reads better.
const MAX_DOTS: usize = 80;

/// One line: `(x, y)` points, `None` where the value is missing (the line breaks there).
pub(crate) struct Line {
    pub name: String,
    pub points: Vec<(f64, Option<f64>)>,
}

/// A shaded x range with a label (one endpoint's phase).
pub(crate) struct Band {
    pub start: f64,
    pub end: f64,
    pub label: String,
}

/// What the y values measure, for round ticks in their unit.
#[derive(Clone, Copy)]
pub(crate) enum Axis {
    /// Ticks at round KiB, MiB, GiB.
    Bytes,
    /// Ticks at round numbers.
    Count,
}

const BYTE_UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];

/// A line chart as an inline `<svg>`.
pub(crate) fn line_chart(
    id: &str,
    lines: &[Line],
    bands: &[Band],
    x_label: &str,
    axis: Axis,
) -> String {
    let values = lines
        .iter()
        .flat_map(|l| l.points.iter())
        .filter_map(|&(x, y)| y.filter(|y| y.is_finite() && x.is_finite()).map(|y| (x, y)));
    let (mut x_lo, mut x_hi, mut y_lo, mut y_hi) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    let mut any = false;
    for (x, y) in values {
        any = true;
        x_lo = x_lo.min(x);
        x_hi = x_hi.max(x);
        y_lo = y_lo.min(y);
        y_hi = y_hi.max(y);
    }
    for band in bands {
        x_lo = x_lo.min(band.start);
        x_hi = x_hi.max(band.end);
    }
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg class="chart-svg" data-chart="{id}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" preserveAspectRatio="xMinYMin meet">"#,
        id = xml_escape(id)
    );
    // What a screen reader says for the whole chart.
    let names: Vec<&str> = lines.iter().map(|l| l.name.as_str()).collect();
    let _ = write!(
        out,
        "<title>{} over {}</title>",
        xml_escape(&names.join(", ")),
        xml_escape(x_label)
    );
    if !any {
        let _ = write!(
            out,
            r#"<text class="muted" x="{}" y="{}" text-anchor="middle">no data</text></svg>"#,
            WIDTH / 2.0,
            HEIGHT / 2.0
        );
        return out;
    }
    if x_hi <= x_lo {
        x_hi = x_lo + 1.0;
    }
    let (scale, unit) = match axis {
        Axis::Bytes => {
            let top = y_hi.abs().max(y_lo.abs());
            let mut k = 0;
            while k + 1 < BYTE_UNITS.len() && top >= 1024f64.powi(k as i32 + 1) {
                k += 1;
            }
            (1024f64.powi(k as i32), BYTE_UNITS[k])
        }
        Axis::Count => (1.0, ""),
    };
    let (ticks, y_lo, y_hi) = nice_ticks(y_lo / scale, y_hi / scale);
    let format_y = |tick: f64| match axis {
        Axis::Bytes => format!("{} {unit}", short_number(tick)),
        Axis::Count => crate::format::format_count(tick.max(0.0) as u64),
    };
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let sx = |x: f64| LEFT + (x - x_lo) / (x_hi - x_lo) * plot_w;
    let sy = |y: f64| TOP + plot_h - (y / scale - y_lo) / (y_hi - y_lo) * plot_h;

    for (i, band) in bands.iter().enumerate() {
        let (a, b) = (sx(band.start), sx(band.end));
        if i % 2 == 0 {
            let _ = write!(
                out,
                r#"<rect class="band" x="{}" y="{TOP}" width="{}" height="{plot_h}"/>"#,
                n(a),
                n((b - a).max(0.0))
            );
        }
        let label = truncate(
            &band.label,
            ((b - a) / 6.5).max(3.0) as usize,
            Truncate::End,
        );
        let _ = write!(
            out,
            r#"<text class="band-label" x="{}" y="{}" text-anchor="middle">{}</text>"#,
            n((a + b) / 2.0),
            n(TOP - 8.0),
            xml_escape(&label)
        );
    }
    for &tick in &ticks {
        let y = sy(tick * scale);
        let _ = write!(
            out,
            r#"<line class="grid" x1="{LEFT}" x2="{}" y1="{y}" y2="{y}"/><text class="axis" x="{}" y="{}" text-anchor="end">{}</text>"#,
            n(LEFT + plot_w),
            n(LEFT - 6.0),
            n(y + 4.0),
            xml_escape(&format_y(tick)),
            y = n(y),
        );
    }
    let bottom = TOP + plot_h;
    let _ = write!(
        out,
        r#"<line class="axis-line" x1="{LEFT}" x2="{}" y1="{b}" y2="{b}"/><text class="axis" x="{LEFT}" y="{}">{}</text><text class="axis" x="{}" y="{}" text-anchor="end">{}</text><text class="axis" x="{}" y="{}" text-anchor="middle">{}</text>"#,
        n(LEFT + plot_w),
        n(bottom + 16.0),
        xml_escape(&short_number(x_lo)),
        n(LEFT + plot_w),
        n(bottom + 16.0),
        xml_escape(&short_number(x_hi)),
        n(LEFT + plot_w / 2.0),
        n(bottom + 32.0),
        xml_escape(x_label),
        b = n(bottom),
    );
    for (i, line) in lines.iter().enumerate() {
        let class = format!("c{}", i % COLORS);
        let mut segment = String::new();
        let mut dots = String::new();
        let drawn: Vec<(f64, Option<f64>)> = line
            .points
            .iter()
            .map(|&(x, y)| (x, y.filter(|y| y.is_finite())))
            .collect();
        let few = drawn.iter().filter(|(_, y)| y.is_some()).count() <= MAX_DOTS;
        let mut segments = Vec::new();
        for &(x, y) in &drawn {
            match y {
                Some(y) => {
                    let _ = write!(segment, "{},{} ", n(sx(x)), n(sy(y)));
                    if few {
                        let _ = write!(
                            dots,
                            r#"<circle cx="{}" cy="{}" r="2.4"/>"#,
                            n(sx(x)),
                            n(sy(y))
                        );
                    }
                }
                None if !segment.is_empty() => segments.push(std::mem::take(&mut segment)),
                None => {}
            }
        }
        if !segment.is_empty() {
            segments.push(segment);
        }
        let _ = write!(out, r#"<g class="line {class}">"#);
        for points in segments {
            let _ = write!(out, r#"<polyline points="{}"/>"#, points.trim_end());
        }
        out.push_str(&dots);
        out.push_str("</g>");
        let legend_y = TOP + 6.0 + 18.0 * i as f64;
        if legend_y < HEIGHT - 8.0 {
            let _ = write!(
                out,
                r#"<g class="legend {class}"><title>{}</title><rect x="{}" y="{}" width="12" height="4"/><text x="{}" y="{}">{}</text></g>"#,
                xml_escape(&line.name),
                n(WIDTH - RIGHT + 12.0),
                n(legend_y - 4.0),
                n(WIDTH - RIGHT + 30.0),
                n(legend_y + 1.0),
                xml_escape(&truncate(&line.name, 21, Truncate::Start))
            );
        }
    }
    out.push_str("</svg>");
    out
}

/// One horizontal bar per row: label, bar proportional to |value|, value text.
pub(crate) fn bar_chart(id: &str, rows: &[(String, f64, String)]) -> String {
    const ROW: f64 = 22.0;
    const LABEL_W: f64 = 300.0;
    const VALUE_W: f64 = 110.0;
    let height = ROW * rows.len().max(1) as f64 + 8.0;
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg class="chart-svg" data-chart="{}" viewBox="0 0 {WIDTH} {h}" role="img" preserveAspectRatio="xMinYMin meet">"#,
        xml_escape(id),
        h = n(height)
    );
    let max = rows.iter().map(|r| r.1.abs()).fold(0.0_f64, f64::max);
    for (i, (label, value, text)) in rows.iter().enumerate() {
        let y = 4.0 + ROW * i as f64;
        let width = if max > 0.0 {
            (value.abs() / max * (WIDTH - LABEL_W - VALUE_W - 12.0)).max(1.0)
        } else {
            1.0
        };
        let class = if *value < 0.0 { "bar neg" } else { "bar" };
        let _ = write!(
            out,
            r#"<text class="bar-label" x="{}" y="{}" text-anchor="end">{}</text><rect class="{class}" x="{LABEL_W}" y="{}" width="{}" height="{}" rx="2"/><text class="bar-value" x="{}" y="{}">{}</text>"#,
            n(LABEL_W - 8.0),
            n(y + 15.0),
            xml_escape(&truncate(label, 40, Truncate::Middle)),
            n(y + 3.0),
            n(width),
            n(ROW - 6.0),
            n(LABEL_W + width + 6.0),
            n(y + 15.0),
            xml_escape(text)
        );
    }
    out.push_str("</svg>");
    out
}

/// A tiny line without axes, for table cells.
pub(crate) fn sparkline(values: &[Option<f64>]) -> String {
    const W: f64 = 120.0;
    const H: f64 = 26.0;
    let known: Vec<(usize, f64)> = values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.filter(|v| v.is_finite()).map(|v| (i, v)))
        .collect();
    if known.len() < 2 {
        return String::new();
    }
    let lo = known.iter().map(|p| p.1).fold(f64::MAX, f64::min);
    let hi = known.iter().map(|p| p.1).fold(f64::MIN, f64::max);
    let span = if hi > lo { hi - lo } else { 1.0 };
    let last = (values.len() - 1).max(1) as f64;
    let points: Vec<String> = known
        .iter()
        .map(|&(i, v)| {
            format!(
                "{},{}",
                n(2.0 + i as f64 / last * (W - 4.0)),
                n(H - 3.0 - (v - lo) / span * (H - 6.0))
            )
        })
        .collect();
    format!(
        r#"<svg class="spark" viewBox="0 0 {W} {H}" width="{W}" height="{H}" aria-hidden="true"><polyline points="{}"/></svg>"#,
        points.join(" ")
    )
}

/// Round tick values covering `lo..hi`, and the range they span.
fn nice_ticks(lo: f64, hi: f64) -> (Vec<f64>, f64, f64) {
    let (lo, hi) = if hi > lo {
        (lo, hi)
    } else {
        let pad = (lo.abs() * 0.05).max(1.0);
        (lo - pad, hi + pad)
    };
    let raw = (hi - lo) / 4.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    let first = (lo / step).floor() * step;
    let last = (hi / step).ceil() * step;
    let mut ticks = Vec::new();
    let mut tick = first;
    while tick <= last + step * 0.5 && ticks.len() < 12 {
        ticks.push(tick);
        tick += step;
    }
    (ticks, first, last.max(first + step))
}

fn short_number(value: f64) -> String {
    if value.fract() == 0.0 || value.abs() >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

/// Coordinates with one decimal keep the page small.
fn n(value: f64) -> String {
    let rounded = (value * 10.0).round() / 10.0;
    if rounded.fract() == 0.0 {
        format!("{rounded:.0}")
    } else {
        format!("{rounded:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_cover_the_range_with_round_steps() {
        let (ticks, lo, hi) = nice_ticks(103.0, 987.0);
        assert!(lo <= 103.0 && hi >= 987.0);
        assert!(ticks.len() >= 3 && ticks.len() <= 12, "{ticks:?}");
        let (ticks, lo, hi) = nice_ticks(5.0, 5.0);
        assert!(lo < 5.0 && hi > 5.0 && !ticks.is_empty());
    }

    #[test]
    fn lines_break_at_missing_values_and_labels_are_escaped() {
        let svg = line_chart(
            "t",
            &[Line {
                name: "<b>".into(),
                points: vec![
                    (0.0, Some(1.0)),
                    (1.0, None),
                    (2.0, Some(3.0)),
                    (3.0, Some(4.0)),
                ],
            }],
            &[Band {
                start: 0.0,
                end: 3.0,
                label: "GET /<x>".into(),
            }],
            "requests",
            Axis::Count,
        );
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("&lt;b&gt;") && !svg.contains("<b>"));
        assert!(svg.contains("GET /&lt;x&gt;"));
    }

    #[test]
    fn byte_axes_tick_at_round_binary_units() {
        let svg = line_chart(
            "b",
            &[Line {
                name: "pid 1".into(),
                points: vec![(0.0, Some(34.3 * 1048576.0)), (1.0, Some(42.0 * 1048576.0))],
            }],
            &[],
            "requests",
            Axis::Bytes,
        );
        assert!(svg.contains(">40 MiB<"), "{svg}");
    }

    #[test]
    fn empty_inputs_still_draw() {
        assert!(line_chart("e", &[], &[], "x", Axis::Bytes).contains("no data"));
        assert!(bar_chart("b", &[]).starts_with("<svg"));
        assert_eq!(sparkline(&[Some(1.0)]), "");
    }
}
