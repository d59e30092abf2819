//! Terminal tables: width limits, alignment, colors and escape hygiene.

use heapsight_report::text::display_width;
use heapsight_report::{
    format_bytes, format_count, Align, Cell, Column, Paint, Style, Table, Truncate,
};

fn strip_ansi(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' && chars.peek() == Some(&'[') {
            for next in chars.by_ref() {
                if next.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn census_table() -> Table {
    let mut table = Table::new(vec![
        Column::left("type").truncate(Truncate::Middle),
        Column::right("count"),
        Column::right("size"),
        Column::right("growth").min_width(1),
        Column::left("module file").truncate(Truncate::Start),
    ]);
    let rows: [(&str, u64, u64, &str, &str); 4] = [
        ("dict", 1_234_567, 98_765_432, "+12,000", "<builtin>"),
        (
            "myapp.services.billing.models.InvoiceLineItemWithAVeryLongName",
            4_321,
            1_048_576,
            "+4,321",
            "/srv/app/.venv/lib/python3.12/site-packages/myapp/services/billing/models.py",
        ),
        (
            "日本語のクラス名",
            12,
            2_048,
            "0",
            "/srv/app/日本/モジュール.py",
        ),
        ("evil\x1b[2Jname", 1, 56, "-3", "x.py"),
    ];
    for (name, count, size, growth, file) in rows {
        let growth_paint = if growth.starts_with('+') {
            Paint::Red
        } else {
            Paint::Green
        };
        table
            .push_row([
                Cell::new(name).paint(Paint::Cyan),
                Cell::new(format_count(count)),
                Cell::new(format_bytes(size)),
                Cell::new(growth).paint(growth_paint),
                Cell::new(file),
            ])
            .unwrap_or_else(|e| panic!("{e}"));
    }
    table
}

#[test]
fn lines_fit_every_width() {
    let table = census_table();
    for width in [1, 10, 20, 40, 60, 80, 120, 200] {
        for color in [false, true] {
            let out = table.render(&Style { color, width });
            assert_eq!(
                out.lines().count(),
                6,
                "header, rule and four rows at width {width}"
            );
            for line in out.lines() {
                let visible = strip_ansi(line);
                assert!(
                    display_width(&visible) <= width,
                    "width {width}: {visible:?} is {} wide",
                    display_width(&visible)
                );
                assert_eq!(
                    visible.trim_end(),
                    visible,
                    "trailing spaces at width {width}"
                );
            }
        }
    }
}

#[test]
fn wide_terminal_shows_everything() {
    let out = census_table().render(&Style::plain(200));
    assert!(out.contains("myapp.services.billing.models.InvoiceLineItemWithAVeryLongName"));
    assert!(out
        .contains("/srv/app/.venv/lib/python3.12/site-packages/myapp/services/billing/models.py"));
    assert!(!out.contains('…'));
    assert!(out.contains("1,234,567"));
    assert!(out.contains("94.2 MiB"));
}

#[test]
fn narrow_terminal_shrinks_text_but_keeps_numbers() {
    let out = census_table().render(&Style::plain(80));
    // Numbers are not shrinkable, so they survive intact.
    for number in ["1,234,567", "4,321", "94.2 MiB", "1.0 MiB", "+12,000"] {
        assert!(out.contains(number), "{number} missing:\n{out}");
    }
    // Type names are cut in the middle (both ends kept), paths at the start (file name kept).
    assert!(out.contains("myapp.serv"), "{out}");
    assert!(
        out.contains("WithAVeryLongName") || out.contains("Name"),
        "{out}"
    );
    assert!(out.contains("…ls.py") || out.contains("models.py"), "{out}");
    assert!(!out
        .contains("/srv/app/.venv/lib/python3.12/site-packages/myapp/services/billing/models.py"));

    let out = census_table().render(&Style::plain(40));
    assert!(out.contains('…'));
    for line in out.lines() {
        assert!(display_width(line) <= 40);
    }
    // At 40 cells the first columns are still readable.
    assert!(out.lines().next().unwrap_or_default().starts_with("type"));
}

#[test]
fn numbers_are_right_aligned() {
    let mut table = Table::new(vec![Column::left("name"), Column::right("count")]);
    for (name, count) in [("a", 5u64), ("bb", 12_345)] {
        table
            .push_row([name.to_owned(), format_count(count)])
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let out = table.render(&Style::plain(80));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "name   count",
            "----  ------",
            "a          5",
            "bb    12,345"
        ]
    );
    assert_eq!(table.len(), 2);
    assert!(!table.is_empty());
    assert_eq!(Column::right("x").align, Align::Right);
}

#[test]
fn no_color_means_no_escape_codes() {
    let table = census_table();
    let no_color = Style::from_environment(true, Some(120), |name| {
        (name == "NO_COLOR").then(|| "1".to_owned())
    });
    assert!(!no_color.color);
    let out = table.render(&no_color);
    assert!(
        !out.contains('\x1b'),
        "escape codes despite NO_COLOR: {out:?}"
    );
    // The heap string's own ESC is made visible instead of being sent to the terminal.
    assert!(out.contains("evil\u{241B}[2Jname"));

    let piped = Style::from_environment(false, None, |_| None);
    assert!(!table.render(&piped).contains('\x1b'));

    let colored = Style {
        color: true,
        width: 120,
    };
    let out = table.render(&colored);
    assert!(out.contains("\x1b[1mtype"), "bold header expected: {out:?}");
    assert!(out.contains("\x1b[31m+12,000\x1b[0m"));
    assert!(out.contains("\x1b[32m-3\x1b[0m"));
    // Only our own SGR sequences appear: every ESC is followed by '[' and a known code.
    assert!(!out.contains("\x1b[2J"));
    assert_eq!(strip_ansi(&out), table.render(&Style::plain(120)));
}
