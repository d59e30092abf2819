"""The HTML report opened in a real headless Chromium, driven over the DevTools protocol
(`--remote-debugging-pipe`, stdlib only): the verdict, a chart and a suspect's retainer graph
must be laid out with a size, the screenshot must not be blank, heap strings holding markup
must show as text and never run, and dark mode must switch the colors.

Chromium comes from `scripts/ensure-chromium.sh` (`make test-python` calls it); without it
these tests skip and say so."""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import pytest

from .conftest import BIN, Runner, free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NO_CHROMIUM = ("chromium is not installed: run scripts/ensure-chromium.sh as root "
               "(apt-get install chromium) to check the HTML report in a browser")
REPO = Path(__file__).resolve().parents[2]
#: Set to a path to keep the full-page screenshot of the run report (docs/report-screenshot.png).
SCREENSHOT_OUT = os.environ.get("HEAPSIGHT_SCREENSHOT_OUT")
WIDTH, HEIGHT = 1366, 900  # a laptop screen


class Browser:
    """One headless Chromium and one page, spoken to with CDP over a pipe pair (fd 3 in,
    fd 4 out, NUL-terminated JSON)."""

    def __init__(self, profile: Path) -> None:
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def remap() -> None:
            # Through fds >= 10 first, so dup2 never overwrites an end still needed.
            a = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10)
            b = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        assert CHROMIUM is not None
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}",
             f"--window-size={WIDTH},{HEIGHT}", "--remote-debugging-pipe", "about:blank"],
            preexec_fn=remap, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            # close_fds would run after preexec_fn and close 3 and 4 again; every other fd
            # Python opened is close-on-exec already.
            stderr=subprocess.DEVNULL, close_fds=False,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        self.session = ""
        targets = self.call("Target.getTargets")["targetInfos"]
        pages = [t for t in targets if t["type"] == "page"]
        target = (pages[0]["targetId"] if pages else
                  self.call("Target.createTarget", url="about:blank")["targetId"])
        self.session = self.call("Target.attachToTarget", targetId=target,
                                 flatten=True)["sessionId"]
        self.call("Page.enable")
        self.call("Runtime.enable")
        self.viewport(WIDTH, HEIGHT)

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_chrome], [], [], left)[0]:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return dict(json.loads(message))

    def call(self, method: str, timeout: float = 30.0, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if self.session and not method.startswith(("Target.", "Browser.")):
            message["sessionId"] = self.session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))
            self.events.append(reply)

    def wait_event(self, method: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        for i, event in enumerate(self.events):
            if event.get("method") == method:
                return self.events.pop(i)
        while True:
            event = self._read_message(deadline)
            if event.get("method") == method:
                return event
            self.events.append(event)

    def viewport(self, width: int, height: int) -> None:
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=False)

    def open(self, path: Path) -> None:
        self.events.clear()
        self.call("Page.navigate", url=path.resolve().as_uri())
        self.wait_event("Page.loadEventFired")

    def js(self, expression: str) -> Any:
        reply = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in reply:
            raise AssertionError(f"page script failed: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def screenshot(self, full_page: bool = False, scale: float = 1.0) -> bytes:
        height = HEIGHT
        if full_page:
            height = int(self.js("document.documentElement.scrollHeight"))
            self.viewport(WIDTH, height)
        clip = {"x": 0, "y": 0, "width": WIDTH, "height": height, "scale": scale}
        data = self.call("Page.captureScreenshot", format="png", clip=clip)["data"]
        if full_page:
            self.viewport(WIDTH, HEIGHT)
        return base64.b64decode(data)

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=10.0)
        except (OSError, RuntimeError, TimeoutError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)


@pytest.fixture
def browser(tmp_path: Path) -> Any:
    if CHROMIUM is None:
        pytest.skip(NO_CHROMIUM)
    b = Browser(tmp_path / "chromium-profile")
    try:
        yield b
    finally:
        b.close()


def distinct_colors(png: bytes) -> int:
    """Distinct pixel values of an 8-bit RGB or RGBA PNG (decoded here, not by the browser)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    height = depth = color = 0
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        body = png[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert depth == 8 and color in (2, 6), (depth, color)
    bpp = 3 if color == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    previous = bytearray(stride)
    colors: set[bytes] = set()
    for y in range(height):
        start = y * (stride + 1)
        kind, row = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        if kind == 1:
            for i in range(bpp, stride):
                row[i] = (row[i] + row[i - bpp]) & 0xFF
        elif kind == 2:
            row = bytearray((a + b) & 0xFF for a, b in zip(row, previous))
        elif kind == 3:
            for i in range(stride):
                left = row[i - bpp] if i >= bpp else 0
                row[i] = (row[i] + ((left + previous[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(stride):
                a = row[i - bpp] if i >= bpp else 0
                b, c = previous[i], previous[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                row[i] = (row[i] + pred) & 0xFF
        for x in range(0, stride, bpp):
            colors.add(bytes(row[x:x + 3]))
        previous = row
    return len(colors)


#: Bounding boxes and facts gathered in the page.
PROBE = """(() => {
  const box = (el) => { if (!el) return null; const r = el.getBoundingClientRect();
    return {w: r.width, h: r.height, visible: r.width > 0 && r.height > 0 &&
            getComputedStyle(el).visibility !== 'hidden'}; };
  const verdict = document.getElementById('verdict');
  const chart = document.querySelector(
      '#chart-rss svg, #chart-objects svg, #chart-type-growth svg');
  const graphs = [...document.querySelectorAll('figure.retainers .graph svg')]
      .filter(s => s.getBoundingClientRect().width > 0);
  const graph = graphs[0] || null;
  return {
    title: document.title,
    verdict: verdict ? verdict.dataset.verdict : null,
    verdictText: verdict ? verdict.innerText : '',
    verdictBox: box(verdict),
    chartBox: box(chart),
    chartLines: chart ? chart.querySelectorAll('polyline, rect.bar').length : 0,
    graphBox: box(graph),
    graphText: graph ? graph.textContent : '',
    graphTarget: graph ? !!graph.querySelector('g.node.target') : false,
    graphEdges: graph ? graph.querySelectorAll('g.edges path').length : 0,
    visibleGraphs: graphs.length,
    bodyText: document.body.innerText,
    background: getComputedStyle(document.body).backgroundColor,
    scripts: document.scripts.length,
    pwned: window.__heapsight_pwned === true,
  };
})()"""


def test_run_report_in_browser(run_heapsight: Runner, browser: Browser,
                               tmp_path: Path) -> None:
    pytest.importorskip("flask")
    pytest.importorskip("gunicorn")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    html = tmp_path / "report.html"
    result = run_heapsight(
        ["--drive", f"GET:{base}/health", "--drive", f"GET:{base}/login/user{{i}}",
         "--requests", "80", "--warmup", "250", "--rounds", "8", "--settle", "1",
         "--report", str(html)],
        [str(BIN / "gunicorn"), "-w", "2", "-b", f"127.0.0.1:{port}", "flask_app:app"],
    )
    assert result.code == 1, result.stderr
    assert "HTML report written to" in result.stderr
    assert html.stat().st_size < 2 * 2**20
    # The terminal summary carries the page's top numbers.
    assert "requests · 2 endpoints" in result.stdout

    browser.open(html)
    page = browser.js(PROBE)
    assert page["verdict"] == "LEAK" and "LEAK" in page["verdictText"]
    assert page["verdictBox"]["visible"], page["verdictBox"]
    assert page["chartBox"]["visible"] and page["chartBox"]["w"] > 300, page["chartBox"]
    assert page["chartLines"] > 0
    assert page["visibleGraphs"] == 1, "one suspect, its graph in one theme"
    assert page["graphBox"]["visible"] and page["graphBox"]["h"] > 50, page["graphBox"]
    assert page["graphTarget"] and page["graphEdges"] >= 2
    assert "flask_app.UserSession" in page["graphText"]
    assert "module flask_app" in page["graphText"]
    for text in ("GET /login/<user>", "GET /health", "HS001", "WeakValueDictionary"):
        assert text in page["bodyText"], text
    assert browser.js("document.querySelectorAll('#chart-rss polyline').length") > 0
    # The terminal summary says what the page's top section says.
    numbers = browser.js("[...document.querySelectorAll('#numbers dd')].map(d => d.innerText)")
    numbers_line = result.stdout.splitlines()[1]
    assert len(numbers) == 5 and all(n in numbers_line for n in numbers), (numbers, numbers_line)
    top = browser.js("[...document.querySelectorAll('#endpoints td:first-child,"
                     " #suspects-summary li .mono')].map(e => e.innerText)")
    assert top and all(text.replace(" → ", " -> ") in result.stdout for text in top), top

    # Sorting: a click on the "count Δ" header orders the type table by it.
    browser.js("document.querySelector('[data-tab=types]').click()")
    browser.js("document.querySelectorAll('#type-table th')[1].click()")
    values = browser.js("[...document.querySelectorAll('#type-table tbody tr')]"
                        ".map(r => parseFloat(r.cells[1].dataset.v))")
    assert values == sorted(values) and len(values) > 3
    assert browser.js("document.getElementById('tab-suspects').hidden") is True
    browser.js("document.querySelector('[data-tab=suspects]').click()")

    png = browser.screenshot(scale=0.5)
    assert distinct_colors(png) > 64, "the screenshot looks blank"
    if SCREENSHOT_OUT:
        Path(SCREENSHOT_OUT).write_bytes(browser.screenshot(full_page=True))


@pytest.fixture(scope="module")
def leaky_snapshots(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return _leaky_snapshots(tmp_path_factory.mktemp("xss"))


def _leaky_snapshots(tmp_path: Path) -> tuple[Path, Path]:
    """Two snapshots of a process whose leak carries markup in its type name, in the
    attribute name holding it and in a dict key on the way (keys that are not names
    enter a snapshot only with include_values, as the user opted in here)."""
    before, after = tmp_path / "before.hsnap", tmp_path / "after.hsnap"
    script = tmp_path / "xss_app.py"
    script.write_text(
        "import sys\n"
        "import heapsight\n"
        "Leaked = type('<img src=x onerror=\"window.__heapsight_pwned=true\">', (), {})\n"
        "NAME = '<script>window.__heapsight_pwned=true;document.title=\"pwned\"</script>'\n"
        "class Box:\n"
        "    pass\n"
        "BOX = Box()\n"
        "setattr(BOX, NAME, {'<script>alert(1)</script>': []})\n"
        "heapsight.snapshot(sys.argv[1], include_values=True)\n"
        "for i in range(400):\n"
        "    getattr(BOX, NAME)[i] = Leaked()\n"
        "    getattr(BOX, NAME)['<script>alert(1)</script>'].append(Leaked())\n"
        "del i\n"
        "heapsight.snapshot(sys.argv[2], include_values=True)\n"
    )
    proc = subprocess.run([sys.executable, str(script), str(before), str(after)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return before, after


def test_heap_strings_are_shown_not_run(browser: Browser, tmp_path: Path,
        leaky_snapshots: tuple[Path, Path]) -> None:
    before, after = leaky_snapshots
    html = tmp_path / "xss.html"
    proc = subprocess.run(
        [sys.executable, "-m", "heapsight", "report", str(before), str(after),
         "--report", str(html)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    browser.open(html)
    page = browser.js(PROBE)
    assert not page["pwned"], "markup from the heap ran"
    assert page["title"].startswith("heapsight report"), page["title"]
    assert page["scripts"] == 1, "only the page's own script element"
    assert not [e for e in browser.events if e.get("method") == "Page.javascriptDialogOpening"]
    # The markup is there as visible text, in the tables and the graph.
    assert '<img src=x onerror="window.__heapsight_pwned=true">' in page["bodyText"]
    assert "<script>window.__heapsight_pwned=true;" in page["bodyText"]
    assert "['<script>alert(1)</script>']" in page["bodyText"]
    # The graph shortens long names but shows the markup as text too.
    assert "__main__.<img src=x on" in page["graphText"], page["graphText"]
    assert ".<script>window.__heapsight" in page["graphText"]
    assert page["graphBox"]["visible"]
    assert browser.js("document.querySelectorAll('img').length") == 0
    assert page["verdict"] == "LEAK" and page["verdictBox"]["visible"]
    # Without a run, the chart is the type growth between the snapshots.
    assert page["chartBox"]["visible"] and page["chartLines"] > 0


def test_dark_mode_switches_colors_and_graph(browser: Browser, tmp_path: Path,
        leaky_snapshots: tuple[Path, Path]) -> None:
    before, after = leaky_snapshots
    html = tmp_path / "dark.html"
    subprocess.run([sys.executable, "-m", "heapsight", "report", str(before), str(after),
                    "--report", str(html)], capture_output=True, timeout=120, check=False)
    browser.open(html)
    light = browser.js(PROBE)
    browser.call("Emulation.setEmulatedMedia",
                 features=[{"name": "prefers-color-scheme", "value": "dark"}])
    dark = browser.js(PROBE)
    assert light["background"] != dark["background"], (light["background"], dark["background"])
    # One graph per suspect in either theme, never both.
    assert dark["visibleGraphs"] == light["visibleGraphs"] >= 1 and dark["graphBox"]["visible"]
    assert browser.js("[...document.querySelectorAll('figure.retainers .graph svg')]"
                      ".filter(s => s.getBoundingClientRect().width > 0)"
                      ".every(s => s.closest('.graph-dark'))") is True
    assert browser.js("getComputedStyle(document.querySelector('.graph-light')).display") \
        == "none"
    assert distinct_colors(browser.screenshot(scale=0.5)) > 32


def test_report_command_html_output_and_errors(tmp_path: Path,
        leaky_snapshots: tuple[Path, Path]) -> None:
    before, after = leaky_snapshots
    # -o with an .html name writes the page instead of the text report.
    page = tmp_path / "page.html"
    proc = subprocess.run([sys.executable, "-m", "heapsight", "report", str(before),
                           str(after), "-o", str(page)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert page.read_text().startswith("<!DOCTYPE html>")
    assert proc.stdout == ""
    missing = tmp_path / "no-such-dir" / "r.html"
    proc = subprocess.run([sys.executable, "-m", "heapsight", "report", str(before),
                           str(after), "--report", str(missing)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3
    assert "cannot write the HTML report" in proc.stderr
    assert "Traceback" not in proc.stderr and "panicked" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "heapsight", "run", "--report", str(missing),
                           "--drive", "GET:http://127.0.0.1:9/", "--", "python", "-c", "0"],
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode == 3
    assert "does not exist" in proc.stderr and "Traceback" not in proc.stderr
