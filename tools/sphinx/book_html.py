"""Small fixes to the book's HTML so that it works offline and with a clean browser console.

- Serves ``static/`` (the scripts below, the favicon, ``book.css``) from the book's ``_static``.
- ``book.css``: code at a size where 88 columns fit the text column; library source shown in a
  cell's output wraps its long lines instead of scrolling.
- ``require-widgets-config.js`` points RequireJS at the local copy of the ipywidgets HTML
  manager, so its fonts load from ``_static/widgets`` rather than a path beside the page.
- ``mathjax2-hub-compat.js``: ipywidgets 8 typesets widget labels through MathJax 2's
  ``MathJax.Hub.Queue``; with MathJax 3 that call throws. The shim maps it onto MathJax 3.
- Drops script tags that appear twice on a page (sphinx-thebe's configuration is emitted twice
  under Jupyter Book 1.0, which redeclares a ``const`` and raises a SyntaxError).
- Sets the theme's default colour mode (left empty, the theme logs a console error on a
  reader's first visit).
- Live explorers: sets ``SIMPLEX_EXPLORERS=static`` before the chapters execute (their kernels
  inherit it), so that each explorer displays as static HTML with its inputs, and copies the
  explorers' ES modules (package data of ``simplex_lib.widgets``) into ``_static/explorers``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

STATIC = Path(__file__).resolve().parent / "static"


def _explorer_modules() -> Path:
    from simplex_lib.widgets.explorer import JS_DIR

    return JS_DIR


def _copy_explorers(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    target = Path(app.outdir) / "_static" / "explorers"
    target.mkdir(parents=True, exist_ok=True)
    for src in sorted(_explorer_modules().glob("*.js")):
        shutil.copyfile(src, target / src.name)


def _add_static(app):
    if str(STATIC) not in app.config.html_static_path:
        app.config.html_static_path.append(str(STATIC))


def _config(app, config):
    context = dict(config.html_context or {})
    context.setdefault("default_mode", "auto")  # read by pydata-sphinx-theme's page template
    config.html_context = context


def _dedupe_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for js in scripts:
        attrs = getattr(js, "attributes", {}) or {}
        key = (getattr(js, "filename", None) or "", tuple(sorted((k, str(v)) for k, v in attrs.items())))
        if key not in seen:
            seen.add(key)
            kept.append(js)
    scripts[:] = kept


def setup(app):
    from simplex_lib.widgets.explorer import STATIC_ENV

    os.environ[STATIC_ENV] = "static"  # read by the kernels that execute the chapters
    app.connect("config-inited", _config)
    app.connect("build-finished", _copy_explorers)
    app.connect("builder-inited", _add_static)
    # after MathJax (priority 500 by default): the shim patches the MathJax 3 object
    app.add_js_file("mathjax2-hub-compat.js", defer="defer", priority=800)
    app.add_css_file("book.css")  # code font and wrapping, see the file
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1.0"}
