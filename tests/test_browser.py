"""The built book in a real browser: headless Chromium, offline, one test per page.

Each page is served from a local HTTP server on 127.0.0.1 and opened in Chromium with every other
host unresolvable, so a script or font fetched from a CDN shows up as a console error. Checks:
maths typeset (no raw ``$$``/``\\begin``, no MathJax errors), every image loaded, every widget
view rendered, no JavaScript console errors, every internal link (and #anchor) resolves.
Screenshots go to artifacts/screenshots/. Skipped when Chromium or chromedriver is absent
(``.ci/run`` installs both).
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
