"""The plumbing shared by the book's explorers: one JavaScript front end, three ways to show it.

Every explorer is a pure state function in Python (tested as data) and one ES module in
``simplex_lib/widgets/js/`` that recomputes the same numbers in the browser and draws them on a
canvas. The module exports ``render({ model, el })``, the anywidget contract; its model holds

- ``spec``: the controls (type, label, range), the caption and fixed sizes;
- ``values``: the controls' current settings;
- ``data``: the inputs Python prepares (token tensors as base64 float64), keyed by the settings
  they depend on (e.g. ``"seed/n"``).

``Explorer`` shows the module in one of three ways (its ``_repr_mimebundle_``):

- **static page** (``SIMPLEX_EXPLORERS=static``, set by the book's Sphinx extension while it
  executes the chapters): HTML with the model as JSON, ``data`` filled for every seed the page
  offers, and a module script that imports the explorer from the book's ``_static/explorers/``
  and calls ``render`` with a small model (``staticModel`` in ``common.js``). No kernel.
- **notebook with a kernel** (JupyterLab, Colab, VS Code): an ``anywidget.AnyWidget`` with the
  same module as ``_esm``; when a control asks for inputs not yet sent (another seed), Python
  computes them (``Explorer.payload``), so the kernel offers every seed.
- **no anywidget installed**: the matplotlib picture of the current state and a note.

A subclass supplies its module name, caption, control specs (``Explorer.controls``), the
key and payload of its inputs, the settings of the static page and the call to its state
function.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import io
import json
import os
from pathlib import Path

import numpy as np

__all__ = ["JS_DIR", "STATIC_ENV", "esm_source", "f64_base64", "figure_png", "Explorer"]

#: The explorers' ES modules (package data, copied into the book's ``_static/explorers``).
JS_DIR = Path(__file__).resolve().parent / "js"
#: Environment variable: ``static`` makes explorers display as self-contained static HTML.
STATIC_ENV = "SIMPLEX_EXPLORERS"
_IMPORT_COMMON = 'from "./common.js";'


@functools.lru_cache(maxsize=None)
def esm_source(name: str) -> str:
    """One self-contained ES module: ``common.js`` followed by ``<name>.js`` without its import.

    anywidget loads ``_esm`` from a string, where the relative import of ``common.js`` cannot
    resolve; the static page imports the two files instead. Cached per name.

    Parameters
    ----------
    name : str
        An explorer module, the stem of a file ``js/<name>.js`` (``"graph"``, ``"coverage"``, ...).

    Returns
    -------
    str, the JavaScript source.

    Raises
    ------
    ValueError
        If ``js/<name>.js`` does not exist.

    Examples
    --------
    >>> src = esm_source("graph")
    >>> "export function render" in src and "./common.js" not in src
    True
    """
    path = JS_DIR / f"{name}.js"
    if not path.is_file():
        raise ValueError(f"name must be one of the explorer modules in {JS_DIR}, got {name!r}")
    body = path.read_text(encoding="utf-8")
    start = body.index("import {")
    end = body.index(_IMPORT_COMMON, start) + len(_IMPORT_COMMON)
    return (JS_DIR / "common.js").read_text(encoding="utf-8") + "\n" + body[:start] + body[end:]


def f64_base64(x) -> str:
    """A tensor or array as base64 of its float64 values, little-endian, row-major (``f64`` in JS).

    Parameters
    ----------
    x : Tensor, array or nested list of numbers, any shape
        A tensor is detached and moved to the CPU first; values are cast to float64.

    Returns
    -------
    str, ASCII base64 of ``8 * x.size`` bytes (the shape is not encoded).

    Examples
    --------
    >>> f64_base64([1.0])
    'AAAAAAAA8D8='
    """
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return base64.b64encode(np.ascontiguousarray(x, dtype="<f8").tobytes()).decode("ascii")


def figure_png(fig, dpi: int) -> bytes:
    """The PNG bytes of a matplotlib figure, as drawn (no extra tight-bounding-box pass).

    Parameters
    ----------
    fig : matplotlib Figure
        Drawn at its own size (``savefig.bbox`` is set to ``"standard"`` for the call).
    dpi : int
        Pixels per inch.

    Returns
    -------
    bytes of a PNG image.

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> figure_png(Figure(figsize=(2, 1)), dpi=10)[:4]
    b'\\x89PNG'
    """
    import matplotlib as mpl

    buf = io.BytesIO()
    with mpl.rc_context({"savefig.bbox": "standard"}):
        fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


@functools.lru_cache(maxsize=None)
def _widget_class(name: str):
    """The anywidget class of one explorer (``None`` when anywidget is not installed)."""
    try:
        import anywidget
        import traitlets
    except ImportError:
        return None

    class ExplorerWidget(anywidget.AnyWidget):
        _esm = esm_source(name)
        spec = traitlets.Dict().tag(sync=True)
        values = traitlets.Dict().tag(sync=True)
        data = traitlets.Dict().tag(sync=True)

    ExplorerWidget.__name__ = ExplorerWidget.__qualname__ = f"{name.title()}ExplorerWidget"
    return ExplorerWidget


class Explorer:
    """Base class of the explorers: settings, the Python state, and the JavaScript front end.

    Parameters
    ----------
    values : dict
        Initial settings, by control name (validated by ``set``).

    Attributes
    ----------
    values : dict, the current settings
    state : dict, the state function's result for ``values`` (computed when read)
    widget : the ``anywidget.AnyWidget`` showing the explorer in a notebook (created on first
        use; ``None`` without anywidget). Moving a control in it updates ``values``.

    Subclasses set ``name`` (the module ``js/<name>.js``), ``caption``, ``fallback_note`` and
    implement ``controls``, ``payload_key``, ``payload``, ``static_values``, ``compute`` and
    ``figure``.
    """

    name: str = ""
    caption: str = ""
    #: Pixels per inch of the fallback picture.
    dpi: int = 70

    def __init__(self, values: dict):
        self.values = {}
        self._state = None
        self._widget = None
        self.set(**values)

    # -- to implement ------------------------------------------------------------------------
    def controls(self, static: bool) -> list:
        """The control specs (see ``buildControls`` in ``common.js``).

        Parameters
        ----------
        static : bool
            True: the controls of the static page (e.g. a seed limited to the values it ships);
            False: the kernel's, which :meth:`~simplex_lib.widgets.explorer.Explorer.check` validates settings against.

        Returns
        -------
        list of dict
            One per control, with ``name``, ``label``, ``type`` (``"int"`` with ``min`` and
            ``max`` or ``max_from``, ``"log"``, ``"bool"``, ``"choice"`` with ``options``,
            ``"values"``) and the type's fields.
        """
        raise NotImplementedError

    def payload_key(self, values: dict) -> str:
        """The key of the inputs the settings need (the JavaScript module computes the same).

        Parameters
        ----------
        values : dict
            Settings, by control name.

        Returns
        -------
        str
            E.g. ``"seed/n"``; settings with equal keys share one
            :meth:`~simplex_lib.widgets.explorer.Explorer.payload`.
        """
        raise NotImplementedError

    def payload(self, values: dict) -> dict | None:
        """The inputs for these settings (``None`` when the module computes them itself).

        Parameters
        ----------
        values : dict
            Settings, by control name.

        Returns
        -------
        dict or None
            JSON-ready inputs (tensors as :func:`~simplex_lib.widgets.explorer.f64_base64` strings),
            stored under ``payload_key(values)`` in the model's ``data``.
        """
        raise NotImplementedError

    def static_values(self) -> list:
        """Settings whose inputs the static page ships (one per key)."""
        raise NotImplementedError

    def compute(self, values: dict) -> dict:
        """Call the pure state function.

        Parameters
        ----------
        values : dict
            Checked settings, by control name (see :meth:`~simplex_lib.widgets.explorer.Explorer.check`).

        Returns
        -------
        dict, the state the picture and the front end show (what
        :attr:`~simplex_lib.widgets.explorer.Explorer.state` holds).
        """
        raise NotImplementedError

    def figure(self, state: dict):
        """The matplotlib figure of a state (the picture shown without anywidget).

        Parameters
        ----------
        state : dict
            A result of :meth:`~simplex_lib.widgets.explorer.Explorer.compute`.

        Returns
        -------
        matplotlib Figure.
        """
        raise NotImplementedError

    # -- settings and state --------------------------------------------------------------------
    def check(self, values: dict) -> dict:
        """Validate settings against the (kernel) control specs; clamp dependent maxima.

        Parameters
        ----------
        values : dict
            Settings, by control name; every control of ``controls(static=False)`` must be there.

        Returns
        -------
        dict, a copy of ``values`` with ``"log"`` settings as float and settings above a
        ``max_from`` maximum (e.g. a query index past a shorter sequence) lowered to it.

        Raises
        ------
        ValueError
            If a setting is missing or unknown, a choice is not one of its options, a bool is not
            a bool, a ``"log"`` value is not a number > 0, or an int is not an int in its range.
        """
        out = dict(values)
        for spec in self.controls(static=False):
            name = spec["name"]
            if name not in out:
                raise ValueError(f"missing setting {name!r}")
            v = out[name]
            if spec["type"] == "choice":
                allowed = [o[1] for o in spec["options"]]
                if v not in allowed:
                    raise ValueError(f"{name} must be one of {allowed}, got {v!r}")
            elif spec["type"] == "bool":
                if not isinstance(v, bool):
                    raise ValueError(f"{name} must be a bool, got {v!r}")
            elif spec["type"] == "log":
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                    raise ValueError(f"{name} must be a number > 0, got {v!r}")
                out[name] = float(v)
            else:
                hi = out[spec["max_from"]] - 1 if "max_from" in spec else spec["max"]
                if isinstance(v, bool) or not isinstance(v, int) or not spec["min"] <= v:
                    raise ValueError(f"{name} must be an int >= {spec['min']}, got {v!r}")
                if v > hi:
                    if "max_from" not in spec:
                        raise ValueError(f"{name} must be an int in [{spec['min']}, {hi}], got {v!r}")
                    out[name] = hi
        unknown = set(out) - {s["name"] for s in self.controls(static=False)}
        if unknown:
            raise ValueError(f"unknown settings {sorted(unknown)}")
        return out

    def set(self, **changes) -> dict:
        """Change some settings (like moving controls); returns the new state.

        Parameters
        ----------
        **changes
            New values of some controls, by name; the others keep theirs. The widget, if shown,
            moves its controls to match.

        Returns
        -------
        dict, :attr:`state` for the new settings.

        Raises
        ------
        ValueError
            As :meth:`check`.
        """
        self.values = self.check({**self.values, **changes})
        self._state = None
        if self._widget is not None and self._widget.values != self.values:
            self._widget.values = dict(self.values)
        return self.state

    @property
    def state(self) -> dict:
        """The state function's result for the current settings."""
        if self._state is None:
            self._state = self.compute(self.values)
        return self._state

    # -- front ends ------------------------------------------------------------------------------
    def model(self, static: bool) -> dict:
        """The model the JavaScript module reads: spec, values and data.

        Parameters
        ----------
        static : bool
            True: the static page's model, with ``data`` for every setting of
            :meth:`static_values`; False: the kernel's, with ``data`` for the current settings.

        Returns
        -------
        dict with ``spec`` (caption, controls and :meth:`spec_extra`), ``values`` (the current
        settings) and ``data`` (:meth:`payload` results by :meth:`payload_key`).
        """
        spec = {"caption": self.caption, "controls": self.controls(static), **self.spec_extra()}
        values = [*self.static_values()] if static else [self.values]
        data = {}
        for v in values:
            key = self.payload_key(v)
            if key not in data:
                p = self.payload(v)
                if p is not None:
                    data[key] = p
        return {"spec": spec, "values": dict(self.values), "data": data}

    def spec_extra(self) -> dict:
        """Constants the module needs besides the controls."""
        return {}

    def static_html(self) -> str:
        """Self-contained HTML for the static book page (module imported from ``_static``)."""
        model = json.dumps(self.model(static=True), separators=(",", ":"), sort_keys=True)
        model = model.replace("</", "<\\/")
        uid = f"sx-{self.name}-{hashlib.sha1(model.encode()).hexdigest()[:10]}"
        return (
            f'<div class="sx-host" id="{uid}"><p>This explorer draws itself with JavaScript; '
            f'it needs a browser with JavaScript enabled.</p></div>\n'
            f'<script type="application/json" id="{uid}-model">{model}</script>\n'
            '<script type="module">\n'
            f'const el = document.getElementById("{uid}");\n'
            'const base = new URL((document.documentElement.dataset.content_root || "./")'
            ' + "_static/explorers/", document.baseURI);\n'
            f'const model = JSON.parse(document.getElementById("{uid}-model").textContent);\n'
            f'Promise.all([import(new URL("common.js", base)), import(new URL("{self.name}.js", base))])\n'
            '  .then(([common, explorer]) => explorer.render({ model: common.staticModel(model), el }))\n'
            '  .catch((err) => { el.textContent = "The explorer could not load: " + err; });\n'
            '</script>\n'
        )

    @property
    def widget(self):
        """The anywidget instance (created on first use); ``None`` without anywidget."""
        if self._widget is None:
            cls = _widget_class(self.name)
            if cls is None:
                return None
            m = self.model(static=False)
            self._widget = cls(spec=m["spec"], values=m["values"], data=m["data"])
            self._widget.observe(self._on_widget_values, names="values")
        return self._widget

    def _on_widget_values(self, change):
        new = self.check(change["new"])
        self.values = new
        self._state = None
        key = self.payload_key(new)
        w = self._widget
        if key not in w.data:
            p = self.payload(new)
            if p is not None:
                kept = dict(list(w.data.items())[-15:])  # a few recent inputs, not every one
                w.data = {**kept, key: p}

    def _fallback_html(self) -> str:
        from matplotlib.figure import Figure

        from ..viz import use_style

        use_style()
        fig = self.figure(self.state)
        if not isinstance(fig, Figure):  # a pyplot figure: do not show it twice
            import matplotlib.pyplot as plt

            plt.close(fig)
        png = base64.b64encode(figure_png(fig, self.dpi)).decode("ascii")
        return ("<p><em>The interactive explorer needs the <code>anywidget</code> package "
                "(<code>pip install anywidget</code>, then restart the kernel); "
                "this is a picture of its current state.</em></p>"
                f'<img alt="{html.escape(self.caption)}" src="data:image/png;base64,{png}"/>')

    def _repr_mimebundle_(self, include=None, exclude=None):
        text = f"<{type(self).__name__} {self.values}>"
        if os.environ.get(STATIC_ENV) == "static":
            return {"text/html": self.static_html(), "text/plain": text}
        w = self.widget
        if w is None:
            return {"text/html": self._fallback_html(), "text/plain": text}
        return w._repr_mimebundle_(include=include, exclude=exclude)

    def close(self):
        """Close the notebook widget, if one was made."""
        if self._widget is not None:
            self._widget.close()
            self._widget = None
