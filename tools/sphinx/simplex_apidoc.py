"""Sphinx extension for the book's API reference: the ``simplex-api`` directive.

The directive writes one section per public module of ``simplex_lib`` that exists when the book
is built, with autodoc entries for every public function, class and constant defined in it. So
the reference follows the code: a new module or function appears without editing the page, and a
module that is not written yet is simply absent (no import warning in the strict build).

``public_modules`` and ``public_names`` are also used by ``tests/test_api_docs.py``.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective

PACKAGE = "simplex_lib"

# Reading order of the book; modules not named here follow in alphabetical order.
ORDER = [
    "reference", "determinant", "graph", "match3", "sparsity", "kernels", "layers", "models",
    "train", "bench", "scaling", "viz", "widgets", "runtime",
]


def _is_private(modname: str) -> bool:
    return any(part.startswith("_") for part in modname.split("."))


def _order_key(modname: str):
    parts = modname.split(".")
    top = parts[1] if len(parts) > 1 else ""
    rank = ORDER.index(top) if top in ORDER else len(ORDER)
    return (rank, top, parts[2:])


def public_modules(package: str = PACKAGE) -> list[str]:
    """Public submodules of ``package`` (recursively), in the book's reading order.

    A module whose dotted name has a part starting with ``_`` is private and left out.
    An import error is not swallowed: a broken module must fail the build, not vanish.
    """
    pkg = importlib.import_module(package)
    names = []
    for info in pkgutil.walk_packages(pkg.__path__, package + ".", onerror=_raise):
        if not _is_private(info.name):
            names.append(info.name)
    return sorted(names, key=_order_key)


def _raise(name):
    raise ImportError(f"cannot import {name} while listing simplex_lib modules")


def _defined_at_top_level(module, name: str) -> bool:
    try:
        source = inspect.getsource(module)
    except (OSError, TypeError):
        return False
    return re.search(rf"^{re.escape(name)}\s*(:[^=\n]*)?=", source, re.MULTILINE) is not None


def _is_package(module) -> bool:
    return hasattr(module, "__path__")


def _candidates(module) -> list[str]:
    explicit = getattr(module, "__all__", None)
    if explicit is not None:
        return list(explicit)
    return [n for n in vars(module) if not n.startswith("_")]


def _home(obj):
    return getattr(obj, "__module__", None) if (inspect.isclass(obj) or callable(obj)) else None


def reexports(modname: str) -> list[tuple[str, str]]:
    """``(name, home)`` for public names a package imports from its own submodules.

    They are documented in the submodule that defines them (``home``); the package section links
    to them, and :func:`resolve_reexport` makes ``package.name`` references resolve there.
    """
    module = importlib.import_module(modname)
    if not _is_package(module):
        return []
    out = []
    for name in _candidates(module):
        obj = getattr(module, name, None)
        home = _home(obj) or ""
        if home.startswith(modname + ".") and not _is_private(home):
            out.append((name, home))
    return out


def public_names(modname: str) -> list[tuple[str, str]]:
    """``(name, kind)`` for each public object documented under module ``modname``.

    kind is ``"function"``, ``"class"`` or ``"data"``. A module documents the functions and
    classes it defines (their ``__module__``), so a name re-exported by a package is documented
    once, where it lives (see :func:`reexports`). Names in ``__all__`` are public; without
    ``__all__`` every name not starting with ``_`` is. Constants: UPPER_CASE names assigned in
    the module's source, or listed in ``__all__``.
    """
    module = importlib.import_module(modname)
    explicit = getattr(module, "__all__", None)
    found = []
    for name in _candidates(module):
        obj = getattr(module, name, None)
        if obj is None or inspect.ismodule(obj):
            continue
        if inspect.isclass(obj) or callable(obj):
            home = _home(obj) or ""
            if home == modname or (explicit is not None and _is_private(home)):
                kind = "class" if inspect.isclass(obj) else "function"
                found.append((name, kind, _line(obj)))
        elif name.isupper() and _defined_at_top_level(module, name):
            found.append((name, "data", _data_line(module, name)))
        elif explicit is not None and name in explicit and not _defined_below(module, name):
            found.append((name, "data", _data_line(module, name)))
    found.sort(key=lambda t: (t[2], t[0]))
    return [(name, kind) for name, kind, _ in found]


def _defined_below(package, name: str) -> bool:
    """Whether a submodule of ``package`` assigns ``name`` at top level (then it is documented there)."""
    if not _is_package(package):
        return False
    for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
        if _defined_at_top_level(importlib.import_module(info.name), name):
            return True
    return False


def _line(obj) -> int:
    try:
        return inspect.getsourcelines(inspect.unwrap(obj))[1]
    except (OSError, TypeError, ValueError):
        return 10**9


def _data_line(module, name: str) -> int:
    try:
        source = inspect.getsource(module)
    except (OSError, TypeError):
        return 10**9
    m = re.search(rf"^{re.escape(name)}\s*(:[^=\n]*)?=", source, re.MULTILINE)
    return source[: m.start()].count("\n") + 1 if m else 10**9


def _summary(modname: str) -> str:
    doc = inspect.getdoc(importlib.import_module(modname)) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


class SimplexApiDirective(SphinxDirective):
    """``simplex-api``: a table of the modules, then a section per module with autodoc entries."""

    has_content = False

    def run(self):
        modules = public_modules()
        lines = [
            "```{eval-rst}",
            ".. py:module:: simplex_lib",
            "```",
            "",
            "| module | what it holds |",
            "| --- | --- |",
        ]
        for mod in modules:
            summary = _summary(mod).replace("|", "\\|")
            lines.append(f"| {{py:mod}}`{mod}` | {summary} |")
        lines.append("")
        result = self._parse(lines, nodes.container())
        out = list(result.children)

        for mod in modules:
            section = nodes.section(ids=[_anchor(mod)], names=[_anchor(mod)])
            section += nodes.title(mod, "", nodes.literal(mod, mod))
            # autodoc writes reStructuredText, so the entries go through eval-rst
            body = ["```{eval-rst}", f".. automodule:: {mod}", "   :no-members:", ""]
            for name, kind in public_names(mod):
                if kind == "data":
                    body += _data_entry(mod, name)
                    continue
                directive = {"function": "autofunction", "class": "autoclass"}[kind]
                body.append(f".. {directive}:: {mod}.{name}")
                if kind == "class":
                    # undocumented methods too (e.g. forward): the source pages link to them
                    body += ["   :members:", "   :undoc-members:", "   :show-inheritance:"]
                body.append("")
            body.append("```")
            links = reexports(mod)
            if links:
                refs = ", ".join(
                    f"{{py:obj}}`{name} <{home}.{name}>`" for name, home in links
                )
                body += ["", f"Also importable from `{mod}`: {refs}."]
            self._parse(body, section)
            out.append(section)
        return out

    def _parse(self, lines, node):
        self.state.nested_parse(StringList(lines, source=self.get_source_info()[0]), self.content_offset, node)
        return node


def _data_entry(modname: str, name: str) -> list[str]:
    """A constant: autodoc when it has a ``#:`` doc comment, else its name and type only.

    (Without a doc comment autodoc would show the docstring of the value's type, e.g. dict's.)
    """
    from sphinx.pycode import ModuleAnalyzer

    try:
        docs = ModuleAnalyzer.for_module(modname).find_attr_docs()
    except Exception:  # noqa: BLE001 - no source: fall back to the plain entry
        docs = {}
    if ("", name) in docs:
        return [f".. autodata:: {modname}.{name}", "   :no-value:", ""]
    value = getattr(importlib.import_module(modname), name)
    return [f".. py:data:: {name}", f"   :module: {modname}", f"   :type: {type(value).__name__}", ""]


def _anchor(modname: str) -> str:
    return "api-" + modname.replace(".", "-").replace("_", "-")


def _import_dotted(path: str):
    """The object named by a dotted path, or None."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def resolve_reexport(app, env, node, contnode):
    """Resolve ``simplex_lib.pkg.name`` (or ``name`` inside ``simplex_lib.pkg``) to where it is defined.

    Connected to Sphinx's ``missing-reference`` event: only references into simplex_lib that
    the Python domain could not resolve come here.
    """
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"]
    modname = node.get("py:module")
    candidates = [target] + ([f"{modname}.{target}"] if modname else [])
    for cand in candidates:
        if not cand.startswith(PACKAGE + "."):
            continue
        obj = _import_dotted(cand)
        home, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
        if not home or not qualname or f"{home}.{qualname}" == cand:
            continue
        domain = env.get_domain("py")
        found = domain.resolve_xref(
            env, node["refdoc"], app.builder, node["reftype"], f"{home}.{qualname}", node, contnode
        )
        if found is not None:
            return found
    return None


def setup(app):
    app.add_directive("simplex-api", SimplexApiDirective)
    app.connect("missing-reference", resolve_reexport)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1.0"}
