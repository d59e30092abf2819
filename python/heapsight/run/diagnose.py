"""From census series and two snapshots to the verdict, the suspects and their endpoints.

A phase is a run of censuses of every worker taken while one endpoint alone was driven
(or, when watching, the whole watch). Growth is summed over the workers present at both
ends of the phase, so requests spread over gunicorn workers still add up.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from heapsight import _heapsight

Census = dict[str, tuple[int, int]]


@dataclasses.dataclass
class Point:
    x: float  # requests sent in this phase so far (or seconds when watching idle traffic)
    time: float
    census: dict[int, Census]
    rss: dict[int, int]
    requests: dict[int, dict[str, int]]


@dataclasses.dataclass
class Phase:
    label: str  # "METHOD /route": the route template when the agent saw one
    points: list[Point]
    requests_sent: int = 0


VERDICT_NAMES = {"leak": "leak", "no_leak": "no-leak", "inconclusive": "inconclusive"}
CANDIDATES_PER_PHASE = 3


def total(point: Point, pids: set[int], type_name: str) -> tuple[int, int]:
    count = size = 0
    for pid in pids:
        c, s = point.census.get(pid, {}).get(type_name, (0, 0))
        count += c
        size += s
    return count, size


def gc_objects(point: Point, pids: set[int]) -> int:
    return sum(c for pid in pids for c, _ in point.census.get(pid, {}).values())


def worker_to_snapshot(phases: list[Phase], baseline: Point, final: Point,
                       candidates: list[int], x_unit: str, settled: bool) -> int | None:
    """The worker to snapshot again: where the types the series call leaking grew most,
    preferring a worker that served the warm-up (a cold one's snapshots also hold what its
    first requests loaded once: modules, classes, caches), then the one that gained the
    most gc objects. With several workers the leaking requests may all have gone to one,
    while another gained more objects in all from churn the snapshots would then show."""
    leaking = {v["type"] for phase in phases
               for v in phase_verdict(phase, x_unit, final if settled else None)["assessed"]
               if v["kind"] == "leak" and v.get("type")}
    present = [pid for pid in candidates if pid in final.census and pid in baseline.census]

    def preference(pid: int) -> tuple[bool, int, int]:
        pids = {pid}
        leaked = sum(total(final, pids, name)[0] - total(baseline, pids, name)[0]
                     for name in leaking)
        warm = sum(baseline.requests.get(pid, {}).values()) > 0
        return (warm and leaked > 0, leaked,
                gc_objects(final, pids) - gc_objects(baseline, pids))

    return max(present, key=preference) if present else None


def common_pids(points: list[Point]) -> set[int]:
    pids = set(points[0].census)
    for point in points[1:]:
        pids &= set(point.census)
    return pids


def growth(first: Point, last: Point, pids: set[int]) -> dict[str, tuple[int, int]]:
    names = set()
    for pid in pids:
        names.update(first.census.get(pid, {}))
        names.update(last.census.get(pid, {}))
    out = {}
    for name in names:
        c0, s0 = total(first, pids, name)
        c1, s1 = total(last, pids, name)
        if c1 != c0 or s1 != s0:
            out[name] = (c1 - c0, s1 - s0)
    return out


def candidate_threshold(phase: Phase) -> int:
    return max(len(phase.points) - 1, phase.requests_sent // 20, 3)


def assess(label: str, points: list[tuple[float, float]], x_unit: str) -> dict[str, Any]:
    try:
        return dict(_heapsight.assess_series(label, points, x_unit, "objects"))
    except ValueError as exc:
        return {"kind": "inconclusive", "explanation": str(exc), "slope_per_unit": 0.0}


def phase_verdict(phase: Phase, x_unit: str = "requests",
                  settled: Point | None = None,
                  bounded: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The endpoint's verdict: its strongest growers assessed one by one. A type that
    grows steadily but falls back once the app has been idle for a while (`settled`, a
    census taken after a pause at the end of the run) is transient, not a leak; one that
    the snapshots show held by a container of fixed capacity (`bounded`: type name to the
    report's `bounded_by`) is a cache filling up, not a leak."""
    points = phase.points
    pids = common_pids(points)
    if len(points) < 2 or not pids:
        return {"kind": "inconclusive", "explanation": "too few censuses", "growth": {},
                "assessed": []}
    grown = growth(points[0], points[-1], pids)
    threshold = candidate_threshold(phase)
    candidates = sorted(
        (name for name, (dc, _) in grown.items() if dc >= threshold),
        key=lambda name: -grown[name][0],
    )[:CANDIDATES_PER_PHASE]
    assessed = []
    for name in candidates:
        series = [(p.x, float(total(p, pids, name)[0])) for p in points]
        verdict = assess(f"{name} count", series, x_unit)
        verdict["type"] = name
        verdict["count_growth"] = grown[name][0]
        assessed.append(verdict)
    if not assessed:
        series = [(p.x, float(gc_objects(p, pids))) for p in points]
        verdict = assess("gc objects", series, x_unit)
        verdict["type"] = None
        assessed.append(verdict)
    if settled is not None:
        for verdict in assessed:
            name = verdict.get("type")
            if verdict["kind"] == "no_leak" or not name:
                continue
            settled_pids = pids & set(settled.census)
            kept = (total(settled, settled_pids, name)[0]
                    - total(points[0], settled_pids, name)[0])
            if kept < grown[name][0] / 2:
                verdict["kind"] = "no_leak"
                verdict["transient"] = True
                verdict["explanation"] = (
                    f"{name} grew by {grown[name][0]} while driven but only {max(kept, 0)} "
                    f"were left after the app settled: released on a timer (keep-alive "
                    f"timeouts, expiring caches), not leaked")
    for verdict in assessed:
        holder = (bounded or {}).get(verdict.get("type") or "")
        if holder is None or verdict["kind"] == "no_leak":
            continue
        verdict["kind"] = "no_leak"
        verdict["bounded"] = True
        verdict["explanation"] = bounded_explanation(verdict["type"], holder)
    kinds = [v["kind"] for v in assessed]
    if "leak" in kinds:
        kind = "leak"
        lead = next(v for v in assessed if v["kind"] == "leak")
    elif all(k == "no_leak" for k in kinds):
        kind = "no_leak"
        lead = assessed[0]
    else:
        kind = "inconclusive"
        lead = next(v for v in assessed if v["kind"] == "inconclusive")
    return {"kind": kind, "explanation": lead.get("explanation", ""), "growth": grown,
            "assessed": assessed, "threshold": threshold}


def bounded_explanation(type_name: str, holder: dict[str, Any]) -> str:
    where = " ".join(holder.get("path") or []) or holder.get("type_name", "a container")
    return (f"{type_name} grows, but it is held by a container of fixed capacity "
            f"({holder.get('type_name')} at {where}: {holder.get('entries')} of "
            f"{holder.get('capacity')} entries in the snapshotted worker); it stops growing "
            f"when full: a cache filling up, not a leak")


def overall(kinds: list[str]) -> str:
    if "leak" in kinds:
        return "leak"
    if kinds and all(k == "no_leak" for k in kinds):
        return "no-leak"
    return "inconclusive"


def nnls(rows: list[list[float]], targets: list[float], iterations: int = 300) -> list[float]:
    """Non-negative least squares by projected coordinate descent (few routes, few windows)."""
    n = len(rows[0]) if rows else 0
    beta = [0.0] * n
    norms = [sum(r[j] * r[j] for r in rows) for j in range(n)]
    residual = list(targets)
    for _ in range(iterations):
        for j in range(n):
            if norms[j] == 0:
                continue
            gradient = sum(rows[i][j] * residual[i] for i in range(len(rows)))
            new = max(0.0, beta[j] + gradient / norms[j])
            delta = new - beta[j]
            if delta:
                for i in range(len(rows)):
                    residual[i] -= rows[i][j] * delta
                beta[j] = new
    return beta


def attribute_by_mix(points: list[Point], type_name: str) -> list[tuple[str, float]]:
    """Watch mode: growth of `type_name` per window regressed on requests per route."""
    pids = common_pids(points)
    routes: set[str] = set()
    for p in points:
        for pid in pids:
            routes.update(p.requests.get(pid, {}))
    ordered = sorted(routes)
    rows, targets = [], []
    for a, b in zip(points, points[1:]):
        row = []
        for route in ordered:
            before = sum(a.requests.get(pid, {}).get(route, 0) for pid in pids)
            after = sum(b.requests.get(pid, {}).get(route, 0) for pid in pids)
            row.append(float(after - before))
        rows.append(row)
        targets.append(float(total(b, pids, type_name)[0] - total(a, pids, type_name)[0]))
    if not rows or not ordered:
        return []
    beta = nnls(rows, targets)
    shares = []
    for j, route in enumerate(ordered):
        attributed = beta[j] * sum(r[j] for r in rows)
        if attributed >= 0.5:
            shares.append((route, attributed))
    return sorted(shares, key=lambda s: -s[1])


def fix_text(suspect: dict[str, Any]) -> str:
    fixes = suspect.get("fixes") or []
    if not fixes:
        return ""
    fix = fixes[0]
    text = f"[{fix.get('code', '')}] {fix.get('title', '')}: {fix.get('advice', '')}".strip()
    if fix.get("use_instead"):
        text += "\n" + str(fix["use_instead"])
    return text
