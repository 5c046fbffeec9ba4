"""Open a report in headless Chromium with the network off, and read back what the page saw.

Used by the browser test and the report benchmark. The page's own render check (see
:mod:`analysis.html`) writes the figure counts, the script errors and the render time onto
``<body>``; ``--dump-dom`` prints the DOM after the scripts ran, and ``--enable-logging=stderr``
prints every console message, which is collected too. Nothing outside the machine is reachable:
every request goes to a proxy at 127.0.0.1:9 (the discard port), which refuses it.
"""

from __future__ import annotations

import html as _html
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--proxy-server=127.0.0.1:9",  # network off: nothing listens there
    "--proxy-bypass-list=<-loopback>",  # ... for loopback addresses too
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
)
_CONSOLE = re.compile(r":CONSOLE[:(]\d*\)?\]\s*(.*)$")


@dataclass
class PageResult:
    """What headless Chromium saw of a page.

    figures: figures the page declares (``data-figures``); rendered: those with a drawn plot;
    errors: script errors and ``console.error`` calls caught by the page; console: every console
    message Chromium logged; ready_ms and render_ms: milliseconds from navigation start to the page
    shown (text, tables) and to every figure drawn (None if the check never ran); wall_s: seconds
    Chromium ran, start-up included; overflowing, empty_panels, legends_missing: what the page's layout check
    found at the window width (:mod:`analysis.html`).
    """

    figures: int | None
    rendered: int | None
    errors: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    ready_ms: float | None = None
    render_ms: float | None = None
    wall_s: float = 0.0
    dom: str = ""
    overflowing: list[str] = field(default_factory=list)  # sections whose table scrolls sideways
    empty_panels: list[str] = field(default_factory=list)  # "fig-N x2": subplots with no data
    legends_missing: list[str] = field(default_factory=list)  # figures with 2+ named traces but no legend in view


def find_chromium() -> str | None:
    """Path of a Chromium or Chrome executable (``SVCONV_CHROMIUM`` first), or None."""
    env = os.environ.get("SVCONV_CHROMIUM")
    if env:
        return shutil.which(env) or (env if Path(env).is_file() else None)
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _run(args: list[str], timeout: float) -> tuple[str, str, float]:
    with tempfile.TemporaryDirectory(prefix="svconv-chromium-") as profile:
        t0 = time.perf_counter()
        proc = subprocess.run(
            [*args[:1], *FLAGS, f"--user-data-dir={profile}", *args[1:]],
            capture_output=True, text=True, timeout=timeout, errors="replace",
        )  # fmt: skip
        return proc.stdout, proc.stderr, time.perf_counter() - t0


def open_page(
    html_path: str | os.PathLike,
    chromium: str | None = None,
    budget_ms: int = 20000,
    timeout: float = 120.0,
    real_time: bool = False,
    width: int = 1400,
) -> PageResult:
    """Load ``html_path`` and return the counts, errors and timings its render check recorded.

    budget_ms: Chromium's virtual time budget: the page's timers run (fast-forwarded) until it is
    spent or nothing is pending, so the DOM is dumped after every figure was drawn. Virtual time also
    drives the page's clock, so its ``render_ms`` is not a real duration; ``wall_s`` is.
    real_time: no virtual time; the DOM is dumped as soon as the page has loaded (before the figures
    are drawn), and ``ready_ms`` is then a real time to show the page. width: the window's width in CSS
    pixels, at which tables must fit. Raises FileNotFoundError
    without Chromium, subprocess.TimeoutExpired after ``timeout`` s.
    """
    exe = chromium or find_chromium()
    if exe is None:
        raise FileNotFoundError("no Chromium found (tried SVCONV_CHROMIUM, " + ", ".join(CANDIDATES) + ")")
    url = Path(html_path).resolve().as_uri()
    clock = f"--timeout={budget_ms}" if real_time else f"--virtual-time-budget={budget_ms}"
    out, err, wall = _run([exe, clock, f"--window-size={width},1000", "--dump-dom", url], timeout)
    body = re.search(r"<body([^>]*)>", out)
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', body.group(1))) if body else {}

    def number(name: str) -> int | None:
        v = attrs.get(name)
        return int(v) if v is not None and v.lstrip("-").isdigit() else None

    def listed(name: str) -> list[str]:
        return json.loads(_html.unescape(attrs[name])) if name in attrs else []

    errors = listed("data-errors")
    console = [m.group(1) for line in err.splitlines() if (m := _CONSOLE.search(line))]
    render_ms, ready_ms = number("data-render-ms"), number("data-ready-ms")
    return PageResult(
        figures=number("data-figures"), rendered=number("data-figures-rendered"), errors=errors, console=console,
        ready_ms=None if ready_ms is None else float(ready_ms), render_ms=None if render_ms is None else float(render_ms),
        wall_s=wall, dom=out, overflowing=listed("data-tables-overflowing"), empty_panels=listed("data-empty-panels"),
        legends_missing=listed("data-legends-missing"),
    )  # fmt: skip


def screenshot(
    html_path: str | os.PathLike,
    png_path: str | os.PathLike,
    chromium: str | None = None,
    size: tuple[int, int] = (1400, 2400),
    budget_ms: int = 20000,
    timeout: float = 120.0,
) -> Path:
    """Save a PNG of the top ``size`` (width, height in CSS pixels) of the page; returns its path."""
    exe = chromium or find_chromium()
    if exe is None:
        raise FileNotFoundError("no Chromium found (tried SVCONV_CHROMIUM, " + ", ".join(CANDIDATES) + ")")
    png = Path(png_path).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    url = Path(html_path).resolve().as_uri()
    _, err, _ = _run(
        [exe, f"--virtual-time-budget={budget_ms}", "--hide-scrollbars", f"--window-size={size[0]},{size[1]}",
         f"--screenshot={png}", url],
        timeout,
    )  # fmt: skip
    if not png.is_file():
        tail = "\n".join(err.splitlines()[-5:])
        raise RuntimeError(f"Chromium wrote no screenshot to {png}; its last messages:\n{tail}")
    return png
