"""Build a few chapters and look at them as a reader does: screenshots and figure scales.

A maintainer's tool for editing a chapter without rebuilding the whole book::

    .venv/bin/python tools/preview.py 03 05 --out /tmp/preview

builds the landing page, the named chapters and the bibliography (the notebooks are executed)
into ``<out>/_build``, opens each chapter in headless Chromium at a 1280-pixel-wide window,
saves full-page screenshots in slices (``<out>/shots/<chapter>-NN.png``), and prints, for every
figure, the size it is drawn at and the share of it the reader sees.  A figure shown below 90 %
of its size has text smaller than it was drawn with; the book's style draws text at 10-11 pt,
so below about 80 % it falls under 9 pt.  Pass ``--no-build`` to re-shoot an existing build.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _chapters(prefixes: list[str]) -> list[str]:
    names = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
    picked = []
    for pre in prefixes:
        match = [n for n in names if n.startswith(pre)]
        if len(match) != 1:
            raise SystemExit(f"preview.py: error: chapter {pre!r} matches {match or 'nothing'}")
        picked.append(match[0])
    return picked


def build(chapters: list[str], out: Path) -> Path:
    toc = out / "_toc.yml"
    lines = ["format: jb-book", "root: book/intro", "parts:", "  - caption: Chapters", "    chapters:"]
    lines += [f"      - file: notebooks/{c}" for c in chapters]
    lines += ["  - caption: Back matter", "    chapters:", "      - file: book/bibliography"]
    toc.write_text("\n".join(lines) + "\n")
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb), "build", str(ROOT), "--toc", str(toc), "--path-output", str(out), "--keep-going"]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=False)
    return out / "_build" / "html"


_FIGURES_JS = """
const col = document.querySelector('main') || document.body;
return Array.from(col.querySelectorAll('img')).map(im => ({
  src: im.getAttribute('src').slice(-40), natural: im.naturalWidth, shown: im.clientWidth}));
"""


def shoot(html: Path, chapters: list[str], out: Path) -> None:
    from selenium import webdriver

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(html))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    opts = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1000"):
        opts.add_argument(a)
    driver = webdriver.Chrome(options=opts)
    shots = out / "shots"
    shots.mkdir(parents=True, exist_ok=True)
    try:
        for c in chapters:
            driver.get(f"http://127.0.0.1:{srv.server_port}/notebooks/{c}.html")
            height = driver.execute_script("return document.body.scrollHeight")
            # step by the visible height less a small overlap, so no line falls between two shots
            step = driver.execute_script("return window.innerHeight") - 40
            for k, y in enumerate(range(0, height, step)):
                driver.execute_script(f"window.scrollTo(0, {y})")
                driver.save_screenshot(str(shots / f"{c[:2]}-{k:02d}.png"))
            figs = driver.execute_script(_FIGURES_JS)
            print(f"\n{c}: {height} px tall, {k + 1} screenshots in {shots}")
            for f in figs:
                if f["natural"] and f["shown"]:  # hidden images (launch-button logos) have no width
                    scale = f["shown"] / f["natural"]
                    flag = "  <-- shrunk below 90 %" if scale < 0.9 else ""
                    print(f"  figure {f['src']:>40}: {f['natural']} px drawn, {scale:4.0%} shown{flag}")
            print(json.dumps({"chapter": c, "figures": figs}), file=(out / "figures.jsonl").open("a"))
    finally:
        driver.quit()
        srv.shutdown()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="tools/preview.py", description=__doc__.split("\n")[0])
    ap.add_argument("chapters", nargs="+", help="chapter number prefixes, e.g. 03 05")
    ap.add_argument("--out", type=Path, default=Path("/tmp/preview"), help="build and screenshot folder")
    ap.add_argument("--no-build", action="store_true", help="re-shoot an existing build")
    args = ap.parse_args(argv)
    chapters = _chapters(args.chapters)
    args.out.mkdir(parents=True, exist_ok=True)
    html = args.out / "_build" / "html" if args.no_build else build(chapters, args.out)
    shoot(html, chapters, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
