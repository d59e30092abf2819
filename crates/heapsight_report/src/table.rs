//! Terminal tables: aligned columns, shrinking to the terminal width, optional ANSI colors.

use std::io::IsTerminal;

use thiserror::Error;

use crate::text::{display_width, sanitize, truncate, Truncate};

/// Output settings for terminal text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// Emit ANSI color/bold escapes.
    pub color: bool,
    /// Maximum line width in terminal cells ([`Style::UNLIMITED`] disables truncation).
    pub width: usize,
}

impl Style {
    /// Width meaning "never truncate" (output piped to a file or another program).
    pub const UNLIMITED: usize = usize::MAX;

    /// No colors, fixed width.
    pub fn plain(width: usize) -> Self {
        Self {
            color: false,
            width,
        }
    }

    /// Style for standard output of this process; see [`Style::from_environment`].
    pub fn detect() -> Self {
        let is_tty = std::io::stdout().is_terminal();
        Self::from_environment(
            is_tty,
            if is_tty {
                stdout_terminal_width()
            } else {
                None
            },
            |name| std::env::var(name).ok(),
        )
    }

    /// Decides the style from explicit facts so the policy is testable:
    /// - color when the output is a terminal and `TERM` is not `dumb`, or when `FORCE_COLOR` /
    ///   `CLICOLOR_FORCE` is set to something other than empty or `0`; a non-empty `NO_COLOR`
    ///   always wins (<https://no-color.org>);
    /// - width from `COLUMNS` when it is a positive number, else `terminal_width`, else
    ///   [`Style::UNLIMITED`] (piped output is not truncated).
    pub fn from_environment(
        is_tty: bool,
        terminal_width: Option<usize>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Self {
        let set = |name: &str| env(name).is_some_and(|v| !v.is_empty());
        let forced = |name: &str| env(name).is_some_and(|v| !v.is_empty() && v != "0");
        let color = if set("NO_COLOR") {
            false
        } else if forced("FORCE_COLOR") || forced("CLICOLOR_FORCE") {
            true
        } else {
            is_tty && env("TERM").as_deref() != Some("dumb")
        };
        let columns = env("COLUMNS")
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|&w| w > 0);
        let width = columns
            .or(terminal_width.filter(|&w| w > 0))
            .unwrap_or(Self::UNLIMITED);
        Self { color, width }
    }

    /// Wraps `text` in the escapes for `paint` when colors are enabled.
    pub fn paint(&self, text: &str, paint: Paint) -> String {
        match paint.sgr() {
            Some(code) if self.color => format!("\x1b[{code}m{text}\x1b[0m"),
            _ => text.to_owned(),
        }
    }
}

/// Width of the terminal on standard output, from `ioctl(TIOCGWINSZ)`.
pub fn stdout_terminal_width() -> Option<usize> {
    #[cfg(unix)]
    {
        let mut size = libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCGWINSZ writes one `winsize` through the pointer, which points at a live,
        // properly aligned local; on failure it writes nothing and returns -1.
        let result = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) };
        (result == 0 && size.ws_col > 0).then_some(usize::from(size.ws_col))
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Text emphasis of a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Paint {
    /// No escapes.
    #[default]
    Plain,
    /// Bold.
    Bold,
    /// Dim (secondary information).
    Dim,
    /// Red (growth, leaks).
    Red,
    /// Green (shrinking, fine).
    Green,
    /// Yellow (warnings).
    Yellow,
    /// Blue.
    Blue,
    /// Magenta.
    Magenta,
    /// Cyan (names).
    Cyan,
}

impl Paint {
    fn sgr(self) -> Option<&'static str> {
        match self {
            Paint::Plain => None,
            Paint::Bold => Some("1"),
            Paint::Dim => Some("2"),
            Paint::Red => Some("31"),
            Paint::Green => Some("32"),
            Paint::Yellow => Some("33"),
            Paint::Blue => Some("34"),
            Paint::Magenta => Some("35"),
            Paint::Cyan => Some("36"),
        }
    }
}

/// Horizontal alignment of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Align {
    /// Text.
    #[default]
    Left,
    /// Numbers.
    Right,
}

/// A column definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Header text.
    pub header: String,
    /// Alignment of header and cells.
    pub align: Align,
    /// How cells are cut when the column must shrink.
    pub truncate: Truncate,
    /// The column is never shrunk below this many cells (unless the terminal itself is narrower).
    pub min_width: usize,
    /// Whether the column may be shrunk at all (numbers should not be).
    pub shrinkable: bool,
}

impl Column {
    /// A left-aligned, shrinkable text column.
    pub fn left(header: impl Into<String>) -> Self {
        Self {
            header: header.into(),
            align: Align::Left,
            truncate: Truncate::End,
            min_width: 8,
            shrinkable: true,
        }
    }

    /// A right-aligned, non-shrinkable number column.
    pub fn right(header: impl Into<String>) -> Self {
        Self {
            header: header.into(),
            align: Align::Right,
            truncate: Truncate::End,
            min_width: 1,
            shrinkable: false,
        }
    }

    /// Sets how cells are truncated.
    pub fn truncate(mut self, mode: Truncate) -> Self {
        self.truncate = mode;
        self
    }

    /// Sets the minimum width.
    pub fn min_width(mut self, width: usize) -> Self {
        self.min_width = width;
        self
    }

    /// Allows or forbids shrinking.
    pub fn shrinkable(mut self, shrinkable: bool) -> Self {
        self.shrinkable = shrinkable;
        self
    }
}

/// One cell: text and emphasis.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cell {
    /// Text; control characters are made visible when rendered.
    pub text: String,
    /// Emphasis (only shown when colors are enabled).
    pub paint: Paint,
}

impl Cell {
    /// A plain cell.
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            paint: Paint::Plain,
        }
    }

    /// Sets the emphasis.
    pub fn paint(mut self, paint: Paint) -> Self {
        self.paint = paint;
        self
    }
}

impl From<String> for Cell {
    fn from(text: String) -> Self {
        Cell::new(text)
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Self {
        Cell::new(text)
    }
}

/// A row has more cells than the table has columns.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("row has {got} cells but the table has {expected} columns")]
pub struct RowWidthError {
    /// Number of columns.
    pub expected: usize,
    /// Number of cells given.
    pub got: usize,
}

const SEPARATOR: &str = "  ";

/// A table rendered as aligned plain text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    columns: Vec<Column>,
    rows: Vec<Vec<Cell>>,
}

impl Table {
    /// A table with these columns and no rows.
    pub fn new(columns: Vec<Column>) -> Self {
        Self {
            columns,
            rows: Vec::new(),
        }
    }

    /// Appends a row; missing trailing cells are left empty.
    pub fn push_row<C: Into<Cell>>(
        &mut self,
        cells: impl IntoIterator<Item = C>,
    ) -> Result<(), RowWidthError> {
        let mut row: Vec<Cell> = cells.into_iter().map(Into::into).collect();
        if row.len() > self.columns.len() {
            return Err(RowWidthError {
                expected: self.columns.len(),
                got: row.len(),
            });
        }
        row.resize_with(self.columns.len(), Cell::default);
        self.rows.push(row);
        Ok(())
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Renders header, a rule, and the rows; every line ends with `\n`, has no trailing spaces
    /// and is at most `style.width` cells wide. When the natural widths do not fit, shrinkable
    /// columns are narrowed (widest first, down to their minimum) and cut per their
    /// [`Truncate`] mode; if that is not enough, columns that do not fit are dropped from the
    /// right and the last visible one is cut to the remaining space.
    pub fn render(&self, style: &Style) -> String {
        let header_texts: Vec<String> = self
            .columns
            .iter()
            .map(|c| sanitize(&c.header).into_owned())
            .collect();
        let body_texts: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|row| {
                row.iter()
                    .map(|cell| sanitize(&cell.text).into_owned())
                    .collect()
            })
            .collect();
        let natural: Vec<usize> = (0..self.columns.len())
            .map(|c| {
                body_texts
                    .iter()
                    .map(|row| display_width(&row[c]))
                    .chain(std::iter::once(display_width(&header_texts[c])))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let widths = self.fit_widths(natural, style.width.max(1));

        let mut out = String::new();
        let header_cells: Vec<(String, Paint)> =
            header_texts.into_iter().map(|t| (t, Paint::Bold)).collect();
        self.render_line(&mut out, &header_cells, &widths, style);
        let rule: Vec<(String, Paint)> = widths
            .iter()
            .map(|&w| ("-".repeat(w), Paint::Dim))
            .collect();
        self.render_line(&mut out, &rule, &widths, style);
        for (row, texts) in self.rows.iter().zip(body_texts) {
            let cells: Vec<(String, Paint)> =
                texts.into_iter().zip(row.iter().map(|c| c.paint)).collect();
            self.render_line(&mut out, &cells, &widths, style);
        }
        out
    }

    /// Column widths that fit in `limit`; a width of 0 means the column is hidden.
    fn fit_widths(&self, mut widths: Vec<usize>, limit: usize) -> Vec<usize> {
        let total = |widths: &[usize]| -> usize {
            let visible = widths.iter().filter(|&&w| w > 0).count();
            widths.iter().sum::<usize>() + SEPARATOR.len() * visible.saturating_sub(1)
        };
        // Water-filling: cap every shrinkable column at one common level (never below its
        // floor), choosing the highest level that fits, so the longest columns give up space
        // first and equally.
        if total(&widths) > limit {
            let natural = widths.clone();
            let floor = |c: usize| {
                if self.columns[c].shrinkable {
                    self.columns[c].min_width.max(1).min(natural[c])
                } else {
                    natural[c]
                }
            };
            let capped = |level: usize| -> Vec<usize> {
                (0..natural.len())
                    .map(|c| natural[c].min(level.max(floor(c))))
                    .collect()
            };
            let (mut low, mut high) = (0, natural.iter().copied().max().unwrap_or(0));
            while low < high {
                let mid = low + (high - low).div_ceil(2);
                if total(&capped(mid)) <= limit {
                    low = mid;
                } else {
                    high = mid - 1;
                }
            }
            widths = capped(low);
            // Hand the cells left over below the next level to the leftmost capped columns.
            let mut slack = limit.saturating_sub(total(&widths));
            for c in 0..widths.len() {
                if slack == 0 {
                    break;
                }
                if widths[c] == low && natural[c] > low && low >= floor(c) {
                    widths[c] += 1;
                    slack -= 1;
                }
            }
        }
        // Still too wide: keep whole columns from the left, cut the first one that overflows.
        if total(&widths) > limit {
            let mut used = 0;
            for (c, width) in widths.iter_mut().enumerate() {
                let separator = if c == 0 || used == 0 {
                    0
                } else {
                    SEPARATOR.len()
                };
                let available = limit.saturating_sub(used + separator);
                if available == 0 {
                    *width = 0;
                    continue;
                }
                if *width > available {
                    *width = available;
                }
                used += separator + *width;
            }
        }
        widths
    }

    fn render_line(
        &self,
        out: &mut String,
        cells: &[(String, Paint)],
        widths: &[usize],
        style: &Style,
    ) {
        let mut line = String::new();
        let mut first = true;
        for ((column, (text, paint)), &width) in self.columns.iter().zip(cells).zip(widths) {
            if width == 0 {
                continue;
            }
            if !first {
                line.push_str(SEPARATOR);
            }
            first = false;
            let shown = truncate(text, width, column.truncate);
            let padding = " ".repeat(width - display_width(&shown));
            let painted = style.paint(&shown, *paint);
            match column.align {
                Align::Left => {
                    line.push_str(&painted);
                    line.push_str(&padding);
                }
                Align::Right => {
                    line.push_str(&padding);
                    line.push_str(&painted);
                }
            }
        }
        out.push_str(line.trim_end_matches(' '));
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn environment_policy() {
        assert_eq!(
            Style::from_environment(true, Some(100), env_of(&[])),
            Style {
                color: true,
                width: 100
            }
        );
        assert_eq!(
            Style::from_environment(
                true,
                Some(100),
                env_of(&[("NO_COLOR", "1"), ("COLUMNS", "60")])
            ),
            Style {
                color: false,
                width: 60
            }
        );
        // An empty NO_COLOR does not disable colors, per no-color.org.
        assert!(Style::from_environment(true, None, env_of(&[("NO_COLOR", "")])).color);
        assert_eq!(
            Style::from_environment(false, None, env_of(&[])),
            Style {
                color: false,
                width: Style::UNLIMITED
            }
        );
        assert!(Style::from_environment(false, None, env_of(&[("FORCE_COLOR", "1")])).color);
        assert!(!Style::from_environment(false, None, env_of(&[("FORCE_COLOR", "0")])).color);
        assert!(
            !Style::from_environment(
                false,
                None,
                env_of(&[("FORCE_COLOR", "1"), ("NO_COLOR", "1")])
            )
            .color
        );
        assert!(!Style::from_environment(true, None, env_of(&[("TERM", "dumb")])).color);
        assert_eq!(
            Style::from_environment(true, Some(90), env_of(&[("COLUMNS", "abc")])).width,
            90
        );
    }

    #[test]
    fn paint_only_with_color() {
        assert_eq!(Style::plain(80).paint("x", Paint::Red), "x");
        assert_eq!(
            Style {
                color: true,
                width: 80
            }
            .paint("x", Paint::Red),
            "\x1b[31mx\x1b[0m"
        );
        assert_eq!(
            Style {
                color: true,
                width: 80
            }
            .paint("x", Paint::Plain),
            "x"
        );
    }

    #[test]
    fn rejects_rows_wider_than_the_table() {
        let mut table = Table::new(vec![Column::left("a")]);
        assert_eq!(
            table.push_row(["1", "2"]),
            Err(RowWidthError {
                expected: 1,
                got: 2
            })
        );
        assert!(table.push_row(Vec::<Cell>::new()).is_ok());
        assert_eq!(table.len(), 1);
    }
}
