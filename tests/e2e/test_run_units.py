"""The pure parts of `heapsight run`: command line, per-endpoint verdicts, attribution."""

from __future__ import annotations

import pytest
from heapsight.run import diagnose
from heapsight.run.diagnose import Phase, Point
from heapsight.run.options import UsageError, parse
from heapsight.run.session import _route_label


def test_bodies_and_headers_belong_to_the_drive_before_them() -> None:
    options = parse([
        "--drive", "POST:http://127.0.0.1:8000/a", "--body", "x=1", "--header", "A: 1",
        "--drive", "GET:http://localhost:8000/b/{i}?q=1", "--header", "B:2",
        "--requests", "40", "--", "python", "app.py",
    ])
    first, second = options.drives
    assert (first.method, first.body, first.headers) == ("POST", b"x=1", [("A", "1")])
    assert (second.body, second.headers) == (b"", [("B", "2")])
    assert second.request_target(7) == "/b/7?q=1"
    assert second.label == "GET /b/{i}"
    assert options.warmup == 300 and options.app == ["python", "app.py"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--body", "x", "--drive", "GET:http://127.0.0.1:1/", "--", "a"], "put a --drive first"),
        (["--drive", "GET:http://127.0.0.1:1/", "--header", "nocolon", "--", "a"], "Name: value"),
        (["--drive", "get:http://127.0.0.1:1/", "--", "a"], "METHOD one of"),
        (["--drive", "GET:http://10.0.0.1:1/", "--", "a"], "only drives the app"),
        (["--drive", "GET:http://127.0.0.1:1/"], "after `--`"),
        (["--requests", "5", "--", "a"], "at least --rounds"),
    ],
)
def test_bad_command_lines(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace("`", "`")):
        parse(argv)


def _phase(counts: list[int], type_name: str = "app.Leak", per_round: int = 10) -> Phase:
    points = []
    for i, n in enumerate(counts):
        census = {1: {type_name: (n, n * 56), "dict": (5000, 10**6)}}
        points.append(Point(x=i * per_round, time=float(i), census=census, rss={}, requests={}))
    return Phase(label="GET /x", points=points, requests_sent=per_round * (len(counts) - 1))


def test_steady_growth_is_a_leak_and_flat_is_not() -> None:
    leak = diagnose.phase_verdict(_phase([100 + 10 * i for i in range(11)]))
    assert leak["kind"] == "leak"
    assert leak["assessed"][0]["type"] == "app.Leak"
    flat = diagnose.phase_verdict(_phase([100] * 11))
    assert flat["kind"] == "no_leak"


def test_growth_released_after_a_pause_is_transient() -> None:
    phase = _phase([100 + 10 * i for i in range(11)], type_name="asyncio.TimerHandle")
    settled = Point(x=100, time=20.0, census={1: {"asyncio.TimerHandle": (104, 0)}},
                    rss={}, requests={})
    verdict = diagnose.phase_verdict(phase, settled=settled)
    assert verdict["kind"] == "no_leak"
    assert verdict["assessed"][0]["transient"] is True


def test_growth_is_summed_over_workers_present_throughout() -> None:
    a = Point(0, 0, {1: {"T": (10, 0)}, 2: {"T": (10, 0)}}, {}, {})
    b = Point(10, 1, {1: {"T": (15, 0)}, 2: {"T": (16, 0)}, 3: {"T": (99, 0)}}, {}, {})
    pids = diagnose.common_pids([a, b])
    assert pids == {1, 2}
    assert diagnose.growth(a, b, pids)["T"] == (11, 0)


def test_watch_attribution_finds_the_route_that_explains_growth() -> None:
    mixes = [(5, 1), (1, 7), (3, 3), (0, 6), (8, 2), (2, 2)]
    points, leaked, login, health = [], 0, 0, 0
    for i, (n_login, n_health) in enumerate([(0, 0), *mixes]):
        login += n_login
        health += n_health
        leaked += 2 * n_login
        points.append(Point(i, i, {1: {"app.Session": (leaked, 0)}}, {},
                            {1: {"GET /login": login, "GET /health": health}}))
    ranked = diagnose.attribute_by_mix(points, "app.Session")
    assert [route for route, _ in ranked] == ["GET /login"]
    assert ranked[0][1] == pytest.approx(2 * login, rel=0.01)


def test_the_worker_snapshotted_is_where_the_leak_grew_not_the_busiest() -> None:
    """Worker 1 served the leaking requests (app.Leak +10 a round); worker 2 gained more
    objects in all (5,000 dicts of churn, flat over the rounds so not a leak)."""
    points = []
    for i in range(11):
        census = {1: {"app.Leak": (100 + 10 * i, 0), "dict": (5000, 0)},
                  2: {"app.Leak": (100, 0), "dict": (5000 if i == 0 else 10000, 0)}}
        points.append(Point(x=i * 10, time=float(i), census=census, rss={}, requests={}))
    phase = Phase(label="GET /x", points=points, requests_sent=100)
    baseline, final = points[0], points[-1]
    assert diagnose.worker_to_snapshot([phase], baseline, final, [1, 2], "requests",
                                       settled=False) == 1
    # Worker 2 also leaks, a little less, but it served no warm-up: its snapshots would
    # hold what its first requests loaded, so the warm worker 1 is preferred...
    requests = {1: {"GET /x": 50}}
    for i, point in enumerate(points):
        point.census[2]["app.Leak"] = (100 + 9 * i, 0)
    baseline.requests.update(requests)
    assert diagnose.worker_to_snapshot([phase], baseline, final, [1, 2], "requests",
                                       settled=False) == 1
    # ... unless the leak did not grow in it at all (its requests went elsewhere).
    for point in points:
        point.census[1]["app.Leak"] = (100, 0)
    assert diagnose.worker_to_snapshot([phase], baseline, final, [1, 2], "requests",
                                       settled=False) == 2
    # Nothing leaks: the worker that grew most.
    flat = Phase(label="GET /y", points=[baseline, baseline], requests_sent=10)
    assert diagnose.worker_to_snapshot([flat], baseline, baseline, [1, 2], "requests",
                                       settled=False) == 1
    assert diagnose.worker_to_snapshot([phase], baseline, final, [2], "requests",
                                       settled=False) == 2
    assert diagnose.worker_to_snapshot([phase], baseline, final, [3], "requests",
                                       settled=False) is None


def _requests_phase(last: dict[int, dict[str, int]], sent: int) -> Phase:
    first = Point(0, 0, {}, {}, {1: {}, 2: {}})
    return Phase(label="GET /login/user{i}", points=[first, Point(sent, 1, {}, {}, last)],
                 requests_sent=sent)


def test_an_endpoint_is_named_by_its_route_template_when_the_agents_saw_one() -> None:
    both = {1: {"GET /login/<user>": 50}, 2: {"GET /login/<user>": 49}}
    assert _route_label(_requests_phase(both, 100), "GET") == "GET /login/<user>"
    # Worker 2's last census did not answer: its share is missing from the counts, and
    # the template still names the endpoint.
    one = {1: {"GET /login/<user>": 40}}
    assert _route_label(_requests_phase(one, 100), "GET") == "GET /login/<user>"
    # Raw paths (no template) are each seen once: the drive's URL names it better.
    raw = {1: {f"GET /login/user{i}": 1 for i in range(50)}}
    assert _route_label(_requests_phase(raw, 50), "GET") is None
    assert _route_label(_requests_phase(both, 100), "POST") is None
