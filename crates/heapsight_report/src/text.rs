//! Text helpers shared by every renderer: making untrusted heap strings safe to display, measuring
//! their width in terminal cells / monospace advances, and truncating them.

use std::borrow::Cow;

/// Replaces characters that must never reach an output verbatim.
///
/// Heap strings are attacker-controlled (a leaked request body can end up in a label), so:
/// C0 controls become their Unicode "control picture" (`\n` → `␊`, ESC → `␛`), which keeps them
/// visible while preventing terminal escape injection and keeping XML 1.0 valid; DEL becomes `␡`;
/// C1 controls and the XML-forbidden noncharacters U+FFFE/U+FFFF become U+FFFD.
pub fn sanitize(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_replacement) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(text.chars().map(replacement_for).collect())
}

fn needs_replacement(c: char) -> bool {
    let code = c as u32;
    code < 0x20 || (0x7F..=0x9F).contains(&code) || code == 0xFFFE || code == 0xFFFF
}

fn replacement_for(c: char) -> char {
    let code = c as u32;
    match code {
        // U+2400..U+241F are the control pictures for U+0000..U+001F, in order.
        0x00..=0x1F => char::from_u32(0x2400 + code).unwrap_or('\u{FFFD}'),
        0x7F => '\u{2421}',
        0x80..=0x9F | 0xFFFE | 0xFFFF => '\u{FFFD}',
        _ => c,
    }
}

/// Number of terminal cells (or monospace advances) `c` occupies: 0 for combining marks and
/// zero-width characters, 2 for East Asian wide / fullwidth characters and emoji, 1 otherwise.
///
/// This is a deliberately small approximation of UAX #11 covering the ranges that actually show
/// up in Python heaps; an exact table would be a large dependency for little visible gain.
pub fn char_width(c: char) -> usize {
    let code = c as u32;
    let zero_width = matches!(
        code,
        0x0300..=0x036F
            | 0x0483..=0x0489
            | 0x0591..=0x05BD
            | 0x1AB0..=0x1AFF
            | 0x1DC0..=0x1DFF
            | 0x200B..=0x200F
            | 0x20D0..=0x20FF
            | 0xFE00..=0xFE0F
            | 0xFE20..=0xFE2F
            | 0xFEFF
    );
    if zero_width {
        return 0;
    }
    let wide = matches!(
        code,
        0x1100..=0x115F
            | 0x2E80..=0x303E
            | 0x3041..=0x33FF
            | 0x3400..=0x4DBF
            | 0x4E00..=0x9FFF
            | 0xA000..=0xA4CF
            | 0xAC00..=0xD7A3
            | 0xF900..=0xFAFF
            | 0xFE30..=0xFE4F
            | 0xFF00..=0xFF60
            | 0xFFE0..=0xFFE6
            | 0x1F300..=0x1F64F
            | 0x1F900..=0x1F9FF
            | 0x20000..=0x3FFFD
    );
    if wide {
        2
    } else {
        1
    }
}

/// Display width of `text` in terminal cells; see [`char_width`].
pub fn display_width(text: &str) -> usize {
    text.chars().map(char_width).sum()
}

/// Which part of an over-long text to keep when truncating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Truncate {
    /// Keep the beginning: `very_long_na…`. Right for names.
    #[default]
    End,
    /// Keep the end: `…/site-packages/app.py`. Right for paths.
    Start,
    /// Keep both ends: `myapp.mod…ls.Request`. Right for qualified names.
    Middle,
}

const ELLIPSIS: char = '…';

/// Shortens `text` to at most `max_width` display cells, marking the cut with `…`.
///
/// Returns the input unchanged when it already fits. A `max_width` of 0 yields an empty string.
pub fn truncate(text: &str, max_width: usize, mode: Truncate) -> Cow<'_, str> {
    if display_width(text) <= max_width {
        return Cow::Borrowed(text);
    }
    if max_width == 0 {
        return Cow::Borrowed("");
    }
    let budget = max_width - 1;
    let out = match mode {
        Truncate::End => {
            let mut out = take_prefix(text, budget);
            out.push(ELLIPSIS);
            out
        }
        Truncate::Start => {
            let mut out = String::new();
            out.push(ELLIPSIS);
            out.push_str(&take_suffix(text, budget));
            out
        }
        Truncate::Middle => {
            let head_budget = budget.div_ceil(2);
            let mut out = take_prefix(text, head_budget);
            let used = display_width(&out);
            out.push(ELLIPSIS);
            out.push_str(&take_suffix(text, budget - used));
            out
        }
    };
    Cow::Owned(out)
}

fn take_prefix(text: &str, budget: usize) -> String {
    let mut used = 0;
    let mut out = String::new();
    for c in text.chars() {
        let w = char_width(c);
        if used + w > budget {
            break;
        }
        used += w;
        out.push(c);
    }
    out
}

fn take_suffix(text: &str, budget: usize) -> String {
    let mut used = 0;
    let mut kept = Vec::new();
    for c in text.chars().rev() {
        let w = char_width(c);
        if used + w > budget {
            break;
        }
        used += w;
        kept.push(c);
    }
    kept.iter().rev().collect()
}

/// Escapes text for XML character data and attribute values (both quote styles).
pub fn xml_escape(text: &str) -> Cow<'_, str> {
    if !text.contains(['&', '<', '>', '"', '\'']) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            _ => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_makes_controls_visible() {
        assert_eq!(sanitize("a\nb"), "a\u{240A}b");
        assert_eq!(sanitize("\x1b[31m"), "\u{241B}[31m");
        assert_eq!(
            sanitize("x\u{7f}\u{85}\u{FFFF}"),
            "x\u{2421}\u{FFFD}\u{FFFD}"
        );
        assert!(matches!(sanitize("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn widths() {
        assert_eq!(display_width("abc"), 3);
        assert_eq!(display_width("日本"), 4);
        assert_eq!(display_width("e\u{301}"), 1);
    }

    #[test]
    fn truncation_modes_respect_width() {
        let text = "abcdefghijklmnopqrstuvwxyz";
        assert_eq!(truncate(text, 8, Truncate::End), "abcdefg…");
        assert_eq!(truncate(text, 8, Truncate::Start), "…tuvwxyz");
        assert_eq!(truncate(text, 8, Truncate::Middle), "abcd…xyz");
        assert_eq!(truncate(text, 1, Truncate::Middle), "…");
        assert_eq!(truncate(text, 0, Truncate::End), "");
        assert_eq!(truncate("short", 8, Truncate::End), "short");
        // A wide character that does not fit in the remaining budget is dropped, not split.
        assert_eq!(truncate("日本語です", 4, Truncate::End), "日…");
        for width in 0..30 {
            for mode in [Truncate::End, Truncate::Start, Truncate::Middle] {
                assert!(
                    display_width(&truncate("日本語とascii混在テキスト", width, mode)) <= width
                );
            }
        }
    }

    #[test]
    fn xml_escaping() {
        assert_eq!(
            xml_escape("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&apos;x&apos;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
    }
}
