"""The HTML report of `heapsight run --report OUT.html`: the run result, its census series
per worker and endpoint, and the snapshot analysis, rendered by the Rust extension into one
self-contained page (`docs/html-report.md`)."""

from __future__ import annotations

import json
from typing import Any

from heapsight import _heapsight
from heapsight.run import diagnose
from heapsight.run.diagnose import Phase

#: Types drawn in the "instances" chart besides the suspects.
CHART_TYPES = 6


def chart_types(result: dict[str, Any]) -> list[str]:
    """The suspects first, then what grew fastest per endpoint."""
    names: list[str] = [s["type"] for s in result.get("suspects", [])]
    for endpoint in result.get("endpoints", []):
        for grown in endpoint.get("top_growth", []):
            if grown["type"] not in names:
                names.append(grown["type"])
    return names[:CHART_TYPES]


def series(phases: list[Phase], x_unit: str, types: list[str]) -> dict[str, Any]:
    """Per phase: the census x values, RSS and gc objects per worker, instances per type."""
    out = []
    for phase in phases:
        pids = sorted({pid for point in phase.points for pid in point.census})
        out.append({
            "endpoint": phase.label,
            "x": [point.x for point in phase.points],
            "rss": {str(pid): [point.rss.get(pid) or None for point in phase.points]
                    for pid in pids},
            "objects": {str(pid): [diagnose.gc_objects(point, {pid})
                                   if pid in point.census else None
                                   for point in phase.points] for pid in pids},
            "types": {name: [diagnose.total(point, set(point.census), name)[0]
                             for point in phase.points] for name in types},
        })
    return {"x_unit": x_unit, "phases": out}


def numbers(result: dict[str, Any]) -> str:
    """The numbers under the verdict, as the HTML page shows them."""
    endpoints = result.get("endpoints", [])
    requests = sum(e.get("requests", 0) for e in endpoints)
    workers = result.get("workers", [])
    parts = [_plural(requests, "request"), _plural(len(endpoints), "endpoint"),
             _plural(len(workers), "worker")]
    deltas = [w["rss_after_bytes"] - w["rss_before_bytes"] for w in workers
              if w.get("rss_before_bytes") and w.get("rss_after_bytes")]
    if deltas:
        parts.append(f"RSS {_bytes_delta(sum(deltas))}")
    parts.append(_plural(len(result.get("suspects", [])), "suspect"))
    return " · ".join(parts)


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _bytes_delta(delta: int) -> str:
    # The same units as heapsight_report::format_bytes_delta, so text and page agree.
    size = float(abs(delta))
    sign = "+" if delta > 0 else "-" if delta < 0 else ""
    if size < 1024:
        return f"{sign}{int(size)} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        size /= 1024.0
        if round(size, 1) < 1024.0 or unit == "TiB":
            return f"{sign}{size:.1f} {unit}"
    return f"{sign}{size:.1f} TiB"


def write(path: str, result: dict[str, Any], phases: list[Phase], app: list[str]) -> None:
    """Renders and writes the page atomically; errors are OSError or ValueError."""
    report_json = None
    if result.get("report"):
        with open(result["report"], encoding="utf-8") as f:
            report_json = f.read()
    x_unit = "seconds" if result.get("mode") == "watch" else "requests"
    run = dict(result, series=series(phases, x_unit, chart_types(result)), command=app)
    html = _heapsight.render_html_report(report_json, json.dumps(run), "heapsight run")
    _heapsight.write_atomic(path, html.encode("utf-8"))
