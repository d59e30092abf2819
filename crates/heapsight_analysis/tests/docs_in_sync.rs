//! `docs/fix-rules.md` is generated from the rule catalogue; this test fails when they
//! drift apart. `UPDATE_DOCS=1` rewrites the file instead.

use std::path::PathBuf;

use heapsight_analysis::rules::{render_rules_markdown, CATALOGUE};

#[test]
fn docs_are_in_sync() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/fix-rules.md");
    let expected = render_rules_markdown();
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, &expected)
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        return;
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == expected,
        "{} is out of date: run UPDATE_DOCS=1 cargo test -p heapsight_analysis docs_are_in_sync",
        path.display()
    );
}

#[test]
fn docs_have_ruff_sections_for_every_rule() {
    let doc = render_rules_markdown();
    for rule in CATALOGUE {
        let start = doc
            .find(&format!("\n## {} {}", rule.code, rule.name))
            .unwrap_or_else(|| panic!("{} missing", rule.code));
        let section = &doc[start..];
        for heading in [
            "### What it does",
            "### Why is this bad?",
            "### Example",
            "### Use instead",
        ] {
            assert!(section.contains(heading), "{}: no {heading}", rule.code);
        }
    }
}
