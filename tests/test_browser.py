"""The built book in a real browser: headless Chromium, offline, one test per page.

Each page is served from a local HTTP server on 127.0.0.1 and opened in Chromium with every other
host unresolvable, so a script or font fetched from a CDN shows up as a console error. Checks:
maths typeset (no raw ``$$``/``\\begin``, no MathJax errors), every image loaded, every widget
view rendered, no JavaScript console errors, every internal link (and #anchor) resolves.
Screenshots go to artifacts/screenshots/. Skipped when Chromium or chromedriver is absent
(``.ci/run`` installs both).

The live explorers (chapters 1, 3, 5, 7) are driven on the static page: every control moved to
several values, the numbers the page computes compared with the Python state functions
(``explorer_parity``), the picture checked to change and the redraw timed.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import threading
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from book_pages import HTML, ROOT, html_pages

pytestmark = pytest.mark.book

SHOTS = Path(os.environ.get("BOOK_SCREENSHOTS", ROOT / "artifacts" / "screenshots"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver")
PAGE_TIMEOUT = 60  # seconds for one page to load, typeset and render its widgets

if not (CHROMIUM and DRIVER):
    pytest.skip(
        "headless Chromium and chromedriver are not installed (apt-get install chromium "
        "chromium-driver); .ci/run installs them", allow_module_level=True,
    )
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    assert (HTML / "index.html").is_file(), f"{HTML} has no book: run `make book` first"
    handler = functools.partial(_QuietHandler, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", "--disable-extensions", "--window-size=1280,1024",
        # offline: only the loopback server resolves; anything else is a visible error
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit chromedriver path: Selenium Manager must not try to download one.
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    driver.set_page_load_timeout(PAGE_TIMEOUT)
    driver.set_script_timeout(PAGE_TIMEOUT)
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


# Waits for MathJax's typesetting and for the widget manager to render every view, then reports
# what the page shows. Runs in the page (async: the last argument is Selenium's callback).
_INSPECT = r"""
const done = arguments[arguments.length - 1];
const deadline = Date.now() + arguments[0] * 1000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
(async () => {
  while (document.readyState !== 'complete' && Date.now() < deadline) await sleep(50);
  const mathNodes = document.querySelectorAll('.math');
  if (mathNodes.length) {
    while (!(window.MathJax && MathJax.startup && MathJax.startup.promise) && Date.now() < deadline) await sleep(50);
    if (window.MathJax && MathJax.startup) { try { await MathJax.startup.promise; } catch (e) {} }
  }
  const views = document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]');
  const rendered = () => Array.from(views).filter((s) => {
    const host = s.previousElementSibling;
    return host && host.classList.contains('widget-subarea') && host.children.length > 0
      && host.getBoundingClientRect().height > 0;
  }).length;
  while (rendered() < views.length && Date.now() < deadline) await sleep(100);
  await sleep(200);
  // visible text outside code: raw TeX left there means typesetting failed
  const skip = 'pre, code, script, style, textarea, mjx-container, .highlight, .MathJax';
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  let text = '';
  while (walker.nextNode()) {
    const el = walker.currentNode.parentElement;
    if (el && !el.closest(skip)) text += walker.currentNode.nodeValue + '\n';
  }
  const images = Array.from(document.images).map((im) => ({
    src: im.currentSrc || im.src, ok: im.complete && im.naturalWidth > 0}));
  const links = Array.from(document.querySelectorAll('a[href]')).map((a) => a.href);
  done({
    math: mathNodes.length,
    typeset: document.querySelectorAll('mjx-container').length,
    mathErrors: document.querySelectorAll('mjx-merror, .mjx-merror').length,
    text: text,
    images: images,
    views: views.length,
    rendered: rendered(),
    links: links,
    height: Math.max(document.body.scrollHeight, 1024),
  });
})();
"""


def _target_file(path: str) -> Path:
    local = HTML / unquote(path).lstrip("/")
    return local / "index.html" if local.is_dir() else local


@functools.lru_cache(maxsize=None)
def _ids(file: Path) -> frozenset:
    text = file.read_text(encoding="utf-8", errors="replace")
    return frozenset(re.findall(r'\b(?:id|name)="([^"]+)"', text))


def _console_errors(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def _screenshot(driver, name: str, height: int) -> None:
    shot = SHOTS / (name.replace("/", "__").removesuffix(".html") + ".png")
    data = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": 1280, "height": min(height, 16000), "scale": 1},
    })
    import base64

    shot.write_bytes(base64.b64decode(data["data"]))


def test_index_redirects(server, browser):
    browser.get(f"{server}/index.html")
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, PAGE_TIMEOUT).until(lambda d: not d.current_url.endswith("/index.html"))
    assert _target_file(urlsplit(browser.current_url).path).is_file(), browser.current_url
    _console_errors(browser)  # drain the log


@pytest.mark.parametrize("name", [p for p in html_pages() if p != "index.html"])
def test_page_in_browser(server, browser, name):
    browser.get(f"{server}/{name}")
    info = browser.execute_async_script(_INSPECT, PAGE_TIMEOUT - 5)
    _screenshot(browser, name, info["height"])
    problems = []

    if info["math"]:
        if info["typeset"] < info["math"]:
            problems.append(f"{info['math']} maths elements but {info['typeset']} typeset by MathJax")
    if info["mathErrors"]:
        problems.append(f"{info['mathErrors']} MathJax errors")
    for raw in ("$$", "\\begin{"):
        if raw in info["text"]:
            at = info["text"].index(raw)
            problems.append(f"raw TeX {raw!r} left in the text: ...{info['text'][max(0, at - 60):at + 60]!r}")

    for image in info["images"]:
        if not image["ok"]:
            problems.append(f"image did not load: {image['src']}")

    if info["rendered"] < info["views"]:
        problems.append(f"{info['views']} widget views, {info['rendered']} rendered")
    from selenium.webdriver.common.by import By

    for i, view in enumerate(browser.find_elements(By.CSS_SELECTOR, ".widget-subarea")):
        stem = name.replace("/", "__").removesuffix(".html")
        if view.size["height"] > 0:
            view.screenshot(str(SHOTS / f"{stem}__widget-{i}.png"))

    problems += [f"console error: {m}" for m in _console_errors(browser)]

    for href in info["links"]:
        parts = urlsplit(href)
        if f"{parts.scheme}://{parts.netloc}" != server:
            continue  # external (launch buttons, repository): not reachable offline
        target = _target_file(parts.path)
        if not target.is_file():
            problems.append(f"broken link: {href}")
        elif parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in _ids(target):
            problems.append(f"link to a missing anchor: {href}")

    assert not problems, f"{name}:\n  " + "\n  ".join(dict.fromkeys(problems))


# ---------------------------------------------------------------------------------------------
# Live explorers on the static page: each control moved to several values, the numbers the page
# computes compared with the Python state function, the picture checked to change, and the time
# from input to redraw measured.
# ---------------------------------------------------------------------------------------------

EXPLORER_PAGES = {
    "graph": "notebooks/01-attention-as-graph.html",
    "triangle": "notebooks/03-two-simplicial.html",
    "match3": "notebooks/05-match3.html",
    "coverage": "notebooks/07-windows-topk.html",
}
REDRAW_MS = 50  # input to redrawn picture, per change

_EXPLORER_READY = r"""
const [name, seconds] = [arguments[0], arguments[1]];
const done = arguments[arguments.length - 1];
const deadline = Date.now() + seconds * 1000;
(async () => {
  let root = null;
  while (Date.now() < deadline) {
    root = document.querySelector(`.sx-explorer[data-explorer="${name}"]`);
    if (root && Number(root.dataset.renders) > 0) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  if (!root) { done({ error: "no explorer on the page" }); return; }
  root.scrollIntoView({ block: "start" });
  const canvas = root.querySelector("canvas");
  const box = canvas.getBoundingClientRect();
  const controls = Array.from(root.querySelectorAll("[data-control]")).map((input) => {
    const label = root.querySelector(`label[for="${input.id}"]`);
    const style = getComputedStyle(input);
    return {
      name: input.dataset.control, type: input.type, label: label ? label.textContent.trim() : "",
      trackHeight: input.getBoundingClientRect().height, background: style.backgroundColor,
      focusable: input.tabIndex >= 0 && !input.disabled,
    };
  });
  done({
    controls, alt: canvas.getAttribute("aria-label") || "", role: canvas.getAttribute("role"),
    caption: (root.querySelector(".sx-caption") || {}).textContent || "",
    scale: box.width / parseFloat(canvas.style.width),
    state: JSON.parse(root.querySelector(".sx-state").textContent),
  });
})();
"""

# Moves one control the way a reader does (the input's value, then its input/change event) and
# reports the time the synchronous recompute-and-redraw took, the new state and whether the
# picture's pixels changed.
_EXPLORER_MOVE = r"""
const [name, control, value] = arguments;
const root = document.querySelector(`.sx-explorer[data-explorer="${name}"]`);
const input = root.querySelector(`[data-control="${control}"]`);
const canvas = root.querySelector("canvas");
const before = canvas.toDataURL();
let event = "input";
if (input.tagName === "SELECT") { input.value = JSON.stringify(value); event = "change"; }
else if (input.type === "checkbox") { input.checked = value; event = "change"; }
else input.value = String(value);
const t0 = performance.now();
input.dispatchEvent(new Event(event, { bubbles: true }));
const ms = performance.now() - t0;
return {
  ms, changed: canvas.toDataURL() !== before, alt: canvas.getAttribute("aria-label"),
  state: JSON.parse(root.querySelector(".sx-state").textContent),
};
"""


# The same change again (the input keeps its value): a redraw timed once more, so that a busy
# machine's scheduling hiccup is not counted as the explorer's latency.
_EXPLORER_RETIME = r"""
const [name, control] = arguments;
const input = document.querySelector(`.sx-explorer[data-explorer="${name}"] [data-control="${control}"]`);
const event = input.tagName === "SELECT" || input.type === "checkbox" ? "change" : "input";
const t0 = performance.now();
input.dispatchEvent(new Event(event, { bubbles: true }));
return performance.now() - t0;
"""


def _raw_value(spec: dict, value):
    """What the input element holds for a setting: log10 for log sliders, an index for lists."""
    import math

    if spec["type"] == "log":
        return round(math.log10(value), 6)
    if spec["type"] == "values":
        return spec["values"].index(value)
    return value


@pytest.mark.parametrize("name", list(EXPLORER_PAGES))
def test_explorer_live_on_static_page(server, browser, name):
    from explorer_parity import EXPLORERS, MOVES, problems
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(f"{server}/{EXPLORER_PAGES[name]}")
    info = browser.execute_async_script(_EXPLORER_READY, name, PAGE_TIMEOUT - 5)
    assert "error" not in info, info
    root = browser.find_element(By.CSS_SELECTOR, f'.sx-explorer[data-explorer="{name}"]')
    root.screenshot(str(SHOTS / f"explorer-{name}-initial.png"))
    report = []
    # reader experience: labelled controls with visible tracks, a caption, a text alternative,
    # text in the picture at least 11 px as displayed (drawn at 12-14 px, shown at `scale`)
    for c in info["controls"]:
        if not c["label"]:
            report.append(f"control {c['name']} has no label")
        if not c["focusable"]:
            report.append(f"control {c['name']} is not keyboard-focusable")
        if c["type"] == "range" and (c["trackHeight"] < 4 or c["background"] in ("", "rgba(0, 0, 0, 0)")):
            report.append(f"slider {c['name']} has no visible track: {c}")
    assert info["role"] == "img" and len(info["alt"]) > 40, info["alt"]
    assert info["caption"].startswith("Try"), info["caption"]
    assert 12 * info["scale"] >= 11, f"picture shown at {info['scale']:.2f} of its size"
    report += [f"initial state: {p}" for p in problems(name, info["state"])]

    ex = EXPLORERS[name]()
    specs = {s["name"]: s for s in ex.model(static=True)["spec"]["controls"]}
    times = []
    for control, value in MOVES[name]:
        out = browser.execute_script(_EXPLORER_MOVE, name, control, _raw_value(specs[control], value))
        ms = out["ms"]
        for _ in range(3):
            if ms < REDRAW_MS:
                break
            ms = min(ms, browser.execute_script(_EXPLORER_RETIME, name, control))
        times.append(ms)
        got = out["state"]["values"][control]
        if not (got == value or (isinstance(value, float) and abs(got / value - 1) < 1e-9)):
            report.append(f"{control} -> {value}: the page's setting is {got}")
        if not out["changed"]:
            report.append(f"{control} -> {value}: the picture did not change")
        report += [f"{control} -> {value}: {p}" for p in problems(name, out["state"])]
    root.screenshot(str(SHOTS / f"explorer-{name}-moved.png"))
    print(f"{name}: input to redraw, ms: {[round(t, 1) for t in times]}")
    slow = [f"{ms:.1f}" for ms in times if ms >= REDRAW_MS]
    if slow:
        report.append(f"redraws slower than {REDRAW_MS} ms: {slow} (all: {[round(t, 1) for t in times]})")

    # the keyboard moves a slider too
    first = next(c["name"] for c in info["controls"] if c["type"] == "range")
    slider = root.find_element(By.CSS_SELECTOR, f'[data-control="{first}"]')
    before = browser.execute_script(
        "return arguments[0].closest('.sx-explorer').querySelector('.sx-state').textContent", slider)
    slider.send_keys(Keys.ARROW_LEFT if slider.get_attribute("value") != slider.get_attribute("min")
                     else Keys.ARROW_RIGHT)
    after = browser.execute_script(
        "return arguments[0].closest('.sx-explorer').querySelector('.sx-state').textContent", slider)
    if before == after:
        report.append(f"the arrow keys do not move the {first} slider")
    report += [f"console error: {m}" for m in _console_errors(browser)]
    assert not report, f"{name}:\n  " + "\n  ".join(report)
