"""`heapsight run` on real servers: each app has one leaking endpoint and clean ones, and
the JSON must name the verdict, the leaked type, its retainer path and the endpoint."""

from __future__ import annotations

import re

import pytest

from .conftest import BIN, Runner, assert_contract, free_port

# Sync gunicorn workers and wsgiref close every connection: no keep-alive timers to wait
# for. The uvicorn test keeps the default pause.
BOUNDED = ["--requests", "80", "--warmup", "250", "--rounds", "8"]
FAST = [*BOUNDED, "--settle", "1"]


def _only_suspect(data: dict, type_name: str) -> dict:
    names = [s["type"] for s in data["suspects"]]
    assert names and names[0] == type_name, names
    return data["suspects"][0]


def test_flask_under_gunicorn_two_workers(run_heapsight: Runner) -> None:
    pytest.importorskip("flask")
    pytest.importorskip("gunicorn")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    result = run_heapsight(
        ["--drive", f"GET:{base}/health", "--drive", f"GET:{base}/login/user{{i}}",
         "--drive", f"GET:{base}/items/{{i}}", "--drive", f"GET:{base}/pages/{{i}}", *FAST],
        [str(BIN / "gunicorn"), "-w", "2", "-b", f"127.0.0.1:{port}", "flask_app:app"],
    )
    assert result.code == 1, result.stderr
    data = result.json
    assert data is not None
    assert_contract(data)
    assert data["verdict"] == "leak"
    suspect = _only_suspect(data, "flask_app.UserSession")
    assert suspect["endpoints"] == ["GET /login/<user>"]
    assert suspect["retainer_path"][:2] == ["module flask_app", "._SESSIONS"]
    assert suspect["retainer_path"][-1] == "flask_app.UserSession"
    assert suspect["count_growth"] >= 80
    assert suspect["fix"]
    verdicts = {e["endpoint"]: e["verdict"] for e in data["endpoints"]}
    assert verdicts["GET /login/<user>"] == "leak"
    assert verdicts["GET /health"] == "no-leak"
    assert verdicts["GET /items/<int:item_id>"] == "no-leak"
    # An lru_cache(maxsize=4096) still filling grows steadily: bounded, so not a leak.
    pages = next(e for e in data["endpoints"] if e["endpoint"] == "GET /pages/<int:number>")
    assert pages["verdict"] == "no-leak", pages
    assert "fixed capacity" in pages["explanation"], pages["explanation"]
    assert "flask_app.Page" not in [s["type"] for s in data["suspects"]]
    # Both workers served and were censused; the gunicorn master too.
    assert len([w for w in data["workers"] if w["requests"] > 0]) == 2


def test_plain_wsgi_python_app(run_heapsight: Runner) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    result = run_heapsight(
        ["--drive", f"GET:{base}/ok", "--drive", f"POST:{base}/echo", "--body", "hello",
         "--header", "X-Test: 1", "--drive", f"GET:{base}/leak", *FAST],
        ["python", "wsgi_app.py", str(port)],
    )
    assert result.code == 1, result.stderr
    data = result.json
    assert data is not None
    assert_contract(data)
    assert data["verdict"] == "leak"
    suspect = _only_suspect(data, "__main__.Record")
    assert suspect["endpoints"] == ["GET /leak"]
    assert suspect["retainer_path"][:2] == ["module __main__", "._RECORDS"]
    assert data["http_statuses"]["POST /echo"] == {"200": 80 + 250}


def test_include_values_shows_the_keys_in_the_path(run_heapsight: Runner) -> None:
    # Keys that are not names (URLs here) are `<str len N>` unless the user opts in.
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    result = run_heapsight(
        ["--drive", f"GET:{base}/cache/item-{{i}}", "--include-values", *FAST],
        ["python", "wsgi_app.py", str(port)],
    )
    assert result.code == 1, result.stderr
    data = result.json
    assert data is not None
    suspect = _only_suspect(data, "__main__.Record")
    path = suspect["retainer_path"]
    assert path[:2] == ["module __main__", "._BY_URL"], path
    assert re.fullmatch(r"\['/cache/item-\d+'\]", path[2]), path


def test_fastapi_under_uvicorn(run_heapsight: Runner) -> None:
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    result = run_heapsight(
        ["--drive", f"GET:{base}/ping", "--drive", f"GET:{base}/users/{{i}}", *FAST],
        [str(BIN / "uvicorn"), "--port", str(port), "--log-level", "warning",
         "fastapi_app:app"],
    )
    assert result.code == 1, result.stderr
    data = result.json
    assert data is not None
    assert_contract(data)
    suspect = _only_suspect(data, "fastapi_app.Profile")
    assert suspect["endpoints"] == ["GET /users/{user_id}"]
    assert suspect["retainer_path"][:2] == ["module fastapi_app", "._PROFILES"]
    verdicts = {e["endpoint"]: e["verdict"] for e in data["endpoints"]}
    assert verdicts["GET /ping"] == "no-leak"


def test_fastapi_under_uvicorn_two_workers(run_heapsight: Runner) -> None:
    """uvicorn --workers starts its workers with multiprocessing's spawn (a fresh
    interpreter each, not a fork): every one must load the agent and be censused."""
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    result = run_heapsight(
        ["--drive", f"GET:{base}/ping", "--drive", f"GET:{base}/users/{{i}}", *FAST],
        [str(BIN / "uvicorn"), "--port", str(port), "--workers", "2", "--log-level",
         "warning", "fastapi_app:app"],
    )
    assert result.code == 1, result.stderr
    data = result.json
    assert data is not None
    assert_contract(data)
    suspect = _only_suspect(data, "fastapi_app.Profile")
    assert suspect["endpoints"] == ["GET /users/{user_id}"]
    assert suspect["retainer_path"][:2] == ["module fastapi_app", "._PROFILES"]
    verdicts = {e["endpoint"]: e["verdict"] for e in data["endpoints"]}
    assert verdicts["GET /users/{user_id}"] == "leak"
    assert verdicts["GET /ping"] == "no-leak"
    # The supervisor and both workers have agents; the workers served the requests.
    assert len(data["workers"]) >= 3
    assert len([w for w in data["workers"] if w["requests"] > 0]) >= 1


def test_django_under_gunicorn(run_heapsight: Runner) -> None:
    pytest.importorskip("django")
    pytest.importorskip("gunicorn")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    result = run_heapsight(
        ["--drive", f"GET:{base}/status/", "--drive", f"GET:{base}/orders/{{i}}/", *FAST],
        [str(BIN / "gunicorn"), "-w", "1", "-b", f"127.0.0.1:{port}", "django_app:application"],
    )
    assert result.code == 1, result.stderr
    data = result.json
    assert data is not None
    assert_contract(data)
    suspect = _only_suspect(data, "django_app.Order")
    assert suspect["endpoints"] == ["GET /orders/<int:order_id>/"]
    assert suspect["retainer_path"][:2] == ["module django_app", "._ORDERS"]


def test_bounded_cache_is_no_leak(run_heapsight: Runner) -> None:
    pytest.importorskip("flask")
    pytest.importorskip("gunicorn")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    result = run_heapsight(
        ["--drive", f"GET:{base}/cache/{{i}}", "--drive", f"GET:{base}/health", *FAST],
        [str(BIN / "gunicorn"), "-w", "1", "-b", f"127.0.0.1:{port}", "bounded_app:app"],
    )
    assert result.code == 0, result.stdout + result.stderr
    data = result.json
    assert data is not None
    assert_contract(data)
    assert data["verdict"] == "no-leak"
    assert data["suspects"] == []


def test_app_that_fails_to_start(run_heapsight: Runner) -> None:
    port = free_port()
    result = run_heapsight(
        ["--drive", f"GET:http://127.0.0.1:{port}/", *FAST], ["python", "broken_app.py"],
    )
    assert result.code == 3
    assert "exited before accepting connections" in result.stderr
    assert "cannot read my configuration" in result.stderr  # the app's own output passes


def test_port_never_opens(run_heapsight: Runner) -> None:
    port = free_port()
    result = run_heapsight(
        ["--drive", f"GET:http://127.0.0.1:{port}/", "--startup-timeout", "2", *FAST],
        ["python", "-c", "import time; time.sleep(60)"],
    )
    assert result.code == 3
    assert f"did not accept connections on 127.0.0.1:{port} within 2 s" in result.stderr


def test_app_crashing_mid_run(run_heapsight: Runner) -> None:
    port = free_port()
    result = run_heapsight(
        ["--drive", f"GET:http://127.0.0.1:{port}/", *FAST],
        ["python", "crash_app.py", str(port), "60"],
    )
    assert result.code == 3
    assert "the app exited" in result.stderr


@pytest.mark.parametrize(
    ("drive", "message"),
    [
        ("GET:http://example.com/", "only drives the app it started"),
        ("FETCH:http://127.0.0.1:8000/", "METHOD one of"),
        ("GET:ftp://127.0.0.1:8000/", "must start with http://"),
        ("GET:http://127.0.0.1:99999/", "port is not a number"),
    ],
)
def test_bad_drive_url(run_heapsight: Runner, drive: str, message: str) -> None:
    result = run_heapsight(["--drive", drive], ["python", "wsgi_app.py", "1"], timeout=30)
    assert result.code == 3
    assert message in result.stderr
    assert result.json is None


def test_django_runserver_noreload(run_heapsight: Runner) -> None:
    pytest.importorskip("django")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    serve = ("import django_app; from django.core.management import call_command; "
             f"call_command('runserver', '--noreload', '127.0.0.1:{port}')")
    result = run_heapsight(
        ["--drive", f"GET:{base}/status/", "--drive", f"GET:{base}/orders/{{i}}/", *FAST],
        ["python", "-c", serve],
    )
    assert result.code == 1, result.stderr[-3000:]
    data = result.json
    assert data is not None
    suspect = _only_suspect(data, "django_app.Order")
    assert suspect["endpoints"] == ["GET /orders/<int:order_id>/"]
