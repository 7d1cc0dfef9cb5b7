"""Where the built book is, and which pages it has (shared by the tests of the built HTML).

``BOOK_HTML`` (env) points the tests at another build, e.g. a mini-book built with
``--path-output /tmp/build_x``: ``BOOK_HTML=/tmp/build_x/_build/html pytest -m book``.
``BOOK_TOC`` and ``BOOK_SRC`` likewise pick the table of contents and source folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
HTML = Path(os.environ.get("BOOK_HTML", ROOT / "_build" / "html"))
TOC = Path(os.environ.get("BOOK_TOC", ROOT / "_toc.yml"))
SRC = Path(os.environ.get("BOOK_SRC", ROOT))  # the book's source folder


def toc_files(toc: Path = TOC) -> list[str]:
    """Every file named in the table of contents (root first), without extension."""
    data = yaml.safe_load(toc.read_text())
    files = [data["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections"))

    for part in data.get("parts", []):
        walk(part.get("chapters"))
    walk(data.get("chapters"))
    return files


def chapters(toc: Path = TOC) -> list[str]:
    """The notebook chapters listed in the table of contents (``notebooks/NN-name``)."""
    return [f for f in toc_files(toc) if f.startswith("notebooks/")]


def html_pages(html: Path = HTML) -> list[str]:
    """Every HTML page of the build, relative to its root (static files and sources left out)."""
    if not html.is_dir():
        return []
    return sorted(
        str(p.relative_to(html))
        for p in html.rglob("*.html")
        if p.relative_to(html).parts[0] not in ("_static", "_sources", "_images")
        and not p.relative_to(html).parts[0].startswith(".")
    )
