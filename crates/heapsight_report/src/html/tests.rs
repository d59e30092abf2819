use serde_json::json;

use super::*;

fn report() -> Value {
    json!({
        "schema_version": 1,
        "before": {"pid": 7, "python_version": "3.11.2 (main)", "n_objects": 1000, "heap_bytes": 100000},
        "after": {"pid": 7, "python_version": "3.11.2 (main)", "n_objects": 1300, "heap_bytes": 130000},
        "change": {"elapsed_seconds": 12.5, "n_new": 310, "n_gone": 10, "heap_bytes_delta": 30000,
                   "rss_bytes_delta": null, "heap_growth_per_hour": 8640000.0, "different_processes": false},
        "verdicts": [],
        "type_growth": [
            {"type_name": "app.<script>alert(1)</script>", "count_before": 0, "count_after": 300,
             "count_delta": 300, "bytes_before": 0, "bytes_after": 16800, "bytes_delta": 16800, "new_count": 300},
            {"type_name": "str", "count_before": 10, "count_after": 5, "count_delta": -5,
             "bytes_before": 500, "bytes_after": 250, "bytes_delta": -250, "new_count": 0}
        ],
        "suspects": [{
            "rank": 1, "type_name": "app.<script>alert(1)</script>", "count_growth": 300, "bytes_growth": 30000,
            "shapes": [{"shape": "module app: .<b>x</b>[*] -> app.S", "holder": "module app: .<b>x</b>[*]",
                        "count": 300, "bytes": 16800, "share_percent": 100.0,
                        "example_path": ["module app", ".<b>x</b>", "['<script>alert(2)</script>']", "app.<script>alert(1)</script>"]}],
            "representative_path": ["module app", ".<b>x</b>", "['<script>alert(2)</script>']", "app.<script>alert(1)</script>"],
            "accumulation_point": {"type_name": "dict", "path": ["module app", ".<b>x</b>", "dict"],
                                   "retained_bytes": 40000, "dominated_targets": 300, "total_targets": 300},
            "fixes": [{"code": "HS001", "title": "Unbounded module-level dict", "advice": "Bound it.",
                       "example": "_S = {}\nif a < b: pass\n", "use_instead": "_S = LRU(100)\n",
                       "why_it_works": "eviction", "matched_because": "a dict"}],
            "folded": [{"type_name": "bytearray", "count": 300, "bytes": 9000, "how": "owned"}],
            "headline": "300 new survive"
        }],
        "dominators": [{"type_name": "dict", "name": null, "retained_bytes": 40000, "shallow_bytes": 9000,
                        "share_percent": 30.7, "is_new": false, "path": ["module app", ".<b>x</b>", "dict"]}]
    })
}

fn run() -> Value {
    json!({
        "verdict": "leak", "mode": "drive", "command": ["python", "<app>.py"],
        "endpoints": [
            {"endpoint": "GET /login/<user>", "requests": 100, "verdict": "leak", "explanation": "grows",
             "top_growth": [{"type": "app.<script>alert(1)</script>", "count": 100, "bytes": 5600}]},
            {"endpoint": "GET /health", "requests": 100, "verdict": "no-leak", "explanation": "flat", "top_growth": []}
        ],
        "workers": [{"pid": 11, "rss_before_bytes": 1000000, "rss_after_bytes": 1500000, "requests": 200}],
        "suspects": [{"type": "app.<script>alert(1)</script>", "count_growth": 100, "size_growth_bytes": 5600,
                      "retainer_path": ["module app", ".<b>x</b>", "['k']", "app.<script>alert(1)</script>"],
                      "endpoints": ["GET /login/<user>"], "fix": "[HS001] Bound it.\n_S = LRU(100)\n",
                      "accumulation_point": "module app -> .<b>x</b> -> dict",
                      "allocation_sites": [{"site": "app.py:12", "stack": ["app.py:12"], "count": 100}]}],
        "notes": ["a <note>"],
        "series": {"x_unit": "requests", "phases": [
            {"endpoint": "GET /login/<user>", "x": [0, 50, 100],
             "rss": {"11": [1000000, 1200000, 1500000]}, "objects": {"11": [5000, 5050, 5100]},
             "types": {"app.<script>alert(1)</script>": [0, 50, 100]}},
            {"endpoint": "GET /health", "x": [0, 50, 100],
             "rss": {"11": [1500000, 1500000, null]}, "objects": {"11": [5100, 5100, 5100]}, "types": {}}
        ]}
    })
}

/// Text between tags, with entities still escaped: a raw `<script` outside our own script
/// element would mean heap text became markup.
fn assert_no_injected_markup(html: &str) {
    assert_eq!(
        html.matches("<script").count(),
        1,
        "only our own script element"
    );
    assert!(!html.contains("<b>x</b>"));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
}

#[test]
fn report_only_page_has_everything_and_escapes_heap_text() {
    let report = report();
    let html = to_html(&HtmlInput {
        title: Some("t <i>"),
        report: Some(&report),
        run: None,
    });
    assert_no_injected_markup(&html);
    assert!(html.contains("data-verdict=\"LEAK\""));
    assert!(html.contains("id=\"chart-type-growth\""));
    assert!(html.contains("class=\"retainer-graph\""), "suspect graph");
    assert!(html.contains("accumulation point"));
    assert!(html.contains("id=\"type-table\"") && html.contains("id=\"dominator-table\""));
    assert!(html.contains("if a &lt; b: pass"), "fix code escaped");
    assert!(html.contains("t &lt;i&gt;"));
    // Self-contained: nothing is fetched.
    for needle in ["http://", "https://", "src=\"", "@import", "url(http"] {
        assert!(!html.contains(needle), "{needle} in the page");
    }
}

#[test]
fn run_page_has_series_charts_endpoints_and_allocation_sites() {
    let (report, run) = (report(), run());
    let html = to_html(&HtmlInput {
        title: None,
        report: Some(&report),
        run: Some(&run),
    });
    assert_no_injected_markup(&html);
    for id in [
        "chart-rss",
        "chart-objects",
        "chart-types",
        "endpoints",
        "suspects-summary",
    ] {
        assert!(html.contains(&format!("id=\"{id}\"")), "{id}");
    }
    assert!(html.contains("GET /login/&lt;user&gt;"));
    assert!(html.contains("app.py:12"));
    assert!(html.contains("+488.3 KiB"), "RSS change of the workers");
    assert!(html.contains("a &lt;note&gt;"));
    assert!(html.contains("$ python &lt;app&gt;.py"));
}

#[test]
fn any_input_gives_a_page() {
    let html = to_html(&HtmlInput::default());
    assert!(html.contains("NO VERDICT"));
    let junk = json!({"suspects": "not a list"});
    let html = to_html(&HtmlInput {
        title: None,
        report: Some(&junk),
        run: Some(&json!([1, 2])),
    });
    assert!(html.contains("could not be read"));
}

#[test]
fn ids_of_inline_graphs_do_not_collide() {
    let report = report();
    let html = to_html(&HtmlInput {
        title: None,
        report: Some(&report),
        run: None,
    });
    assert!(html.contains("id=\"hs-arrow-0l\"") && html.contains("id=\"hs-arrow-0d\""));
    assert!(!html.contains("id=\"hs-arrow\""));
}
