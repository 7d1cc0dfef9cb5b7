"""Sphinx extension for the book's API reference: one page per public module of ``simplex_lib``.

When the build starts (``builder-inited``) the extension writes ``book/api/<module>.md`` for every
public module that exists, and deletes the pages of modules that are gone. The folder is
generated (git-ignored); ``_toc.yml`` includes it with a glob under ``book/api``, and the pages are
put in the book's reading order (:data:`ORDER`). So the reference follows the code: a new module
gets its page, a removed one loses it, and nothing is edited by hand.

Two directives:

- ``simplex-api`` (on ``book/api.md``): a table of the modules with their one-line summaries.
- ``simplex-module`` (on each generated page): autodoc entries for every public function, class
  and constant the module defines; constants with their values, a command-line module with its
  ``--help``.

``public_modules``, ``public_names``, ``page_docname``, ``missing_parameters``, ``empty_entries``
and ``shown_doc`` are also used by ``tests/test_api_docs.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import importlib
import inspect
import io
import os
import pkgutil
import pprint
import re
import sys
from pathlib import Path

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.transforms import SphinxTransform
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

PACKAGE = "simplex_lib"
API_DIR = "book/api"  # generated pages, relative to the book's source folder
INDEX_DOC = "book/api"  # the page with the table of modules

logger = logging.getLogger(__name__)

# Reading order of the book, by dotted name below ``simplex_lib``. A module is ranked by the
# longest entry that is a prefix of its name (``ops.two_simplicial.forward`` ranks with
# ``ops.two_simplicial``); modules not covered follow, alphabetically.
ORDER = [
    "ops", "ops.checks", "ops.dot", "ops.two_simplicial", "ops.n_simplicial",
    "ops.determinant", "ops.topk",
    "masks", "selection", "cost", "graph", "tasks", "layers", "model", "train", "experiments", "stats",
    "scaling", "published", "timing", "bench", "bench_plots",
    "viz", "diagrams", "widgets", "runtime", "book", "testing", "provenance", "cli",
    "check_chapters",
]

# Inside a package: the package itself first, then these submodules, then the others.
SUB_ORDER = [
    "reference", "windowed", "variants", "interface", "forward", "backward", "configs", "tiling",
    "triton",
]


def _is_private(modname: str) -> bool:
    return any(part.startswith("_") for part in modname.split("."))


def _order_key(modname: str):
    rel = modname.split(".")[1:]
    rank, depth = len(ORDER), 0
    for i, entry in enumerate(ORDER):
        parts = entry.split(".")
        if rel[: len(parts)] == parts and len(parts) > depth:
            rank, depth = i, len(parts)
    if rank == len(ORDER):
        depth = 1  # unknown: alphabetical by its top-level name
    rest = rel[depth:]
    sub = tuple(
        (SUB_ORDER.index(p) if p in SUB_ORDER else len(SUB_ORDER), p) for p in rest
    )
    return (rank, rel[:depth], sub)


def public_modules(package: str = PACKAGE) -> list[str]:
    """Public submodules of ``package`` (recursively), in the book's reading order.

    A module whose dotted name has a part starting with ``_`` is private and left out.
    An import error is not swallowed: a broken module must fail the build, not vanish.
    """
    pkg = importlib.import_module(package)
    names = {info.name for info in pkgutil.walk_packages(pkg.__path__, package + ".", onerror=_raise)}
    # pkgutil does not descend into namespace packages (a folder without __init__.py): the
    # files say which modules exist
    for root in pkg.__path__:
        for path in Path(root).rglob("*.py"):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            if parts and all(part.isidentifier() for part in parts):
                names.add(".".join([package, *parts]))
    return sorted((n for n in names if not _is_private(n)), key=_order_key)


def _raise(name):
    raise ImportError(f"cannot import {name} while listing simplex_lib modules")


def page_docname(modname: str) -> str:
    """The docname of the generated page of ``modname`` (``book/api/simplex_lib.ops.dot``)."""
    return f"{API_DIR}/{modname}"


# --------------------------------------------------------------------------------------------
# What a module documents


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

    They are documented in the submodule that defines them (``home``); the package's page links
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


def summary(modname: str) -> str:
    """First line of the module docstring, with its reST roles rewritten for MyST."""
    doc = inspect.getdoc(importlib.import_module(modname)) or ""
    return myst_roles(doc.strip().splitlines()[0]) if doc.strip() else ""


def myst_roles(text: str) -> str:
    """Rewrite reST inline markup (``:mod:`x```, ````x````) as MyST (``{mod}`x```, ```x```)."""
    text = re.sub(r":((?:\w+:)?\w+):`", r"{\1}`", text)
    return re.sub(r"``([^`]+)``", r"`\1`", text)


# --------------------------------------------------------------------------------------------
# Docstring check used by the tests: a callable that takes parameters documents them


_PARAMETERS = re.compile(r"^(Other )?Parameters\s*\n-{3,}\s*$", re.MULTILINE)
_FIELDS = re.compile(r"^(Parameters|Attributes)\s*\n-{3,}\s*$", re.MULTILINE)  # of a dataclass


def _takes_parameters(fn, *, skip_first: bool) -> bool:
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    if skip_first and params:
        params = params[1:]
    return bool(params)


def shown_doc(obj) -> str:
    """The docstring the book shows for a public function, class or method (cleaned, or ``""``).

    A class or function: its own docstring. A method without one: the docstring of the method it
    overrides, from the nearest base class in the method resolution order that has one
    (``inspect.getdoc`` semantics; the book sets ``autodoc_inherit_docstrings: true``), so an
    explorer's ``compute`` shows :class:`~simplex_lib.widgets.explorer.Explorer`'s once-written
    docstring. Only a base class of ``simplex_lib`` counts: a method that overrides torch's
    (``nn.Module.forward``, ``autograd.Function.forward``, ``extra_repr``) would show torch's
    generic text, so it needs a docstring of its own.
    """
    own = obj.__doc__ if isinstance(obj.__doc__, str) else ""
    if own.strip() or inspect.isclass(obj) or not inspect.isfunction(obj):
        return inspect.cleandoc(own or "")
    cls = _defining_class(obj)
    if cls is None:
        return ""
    for base in cls.__mro__[1:]:
        if obj.__name__ not in vars(base):
            continue
        base_attr = vars(base)[obj.__name__]
        if isinstance(base_attr, (staticmethod, classmethod)):
            base_attr = base_attr.__func__
        doc = getattr(base_attr, "__doc__", None)
        if isinstance(doc, str) and doc.strip():
            home = getattr(base, "__module__", "") or ""
            return inspect.cleandoc(doc) if home == PACKAGE or home.startswith(PACKAGE + ".") else ""
    return ""


def _defining_class(fn):
    """The class whose body defines the function ``fn`` (from its ``__qualname__``), or None."""
    parts = fn.__qualname__.split(".")
    if len(parts) < 2 or "<locals>" in parts:
        return None
    obj = sys.modules.get(fn.__module__)
    for part in parts[:-1]:
        obj = getattr(obj, part, None)
    return obj if inspect.isclass(obj) else None


def _has_section(obj, section=_PARAMETERS) -> bool:
    # the docstring the book shows: a method's own, or the one it inherits (see shown_doc)
    return bool(section.search(shown_doc(obj)))


def public_callables(modname: str) -> list[tuple[str, object, bool]]:
    """``(qualified name, object, is_method)`` for every public function, class and method.

    Methods: those a public class defines itself (not inherited), public or ``__call__``;
    ``forward`` of a module counts.
    """
    module = importlib.import_module(modname)
    out = []
    for name, kind in public_names(modname):
        obj = getattr(module, name)
        if kind == "function":
            out.append((name, obj, False))
        elif kind == "class":
            out.append((name, obj, False))
            for attr, value in vars(obj).items():
                if attr.startswith("_") and attr != "__call__":
                    continue
                if isinstance(value, (staticmethod, classmethod)):
                    value = value.__func__
                if inspect.isfunction(value):
                    out.append((f"{name}.{attr}", value, not isinstance(vars(obj)[attr], staticmethod)))
    return out


def missing_parameters(modname: str) -> list[str]:
    """Public callables of ``modname`` that take parameters but have no Parameters section.

    A class is checked through its constructor: its docstring (or ``__init__``'s) needs a
    Parameters section, or an Attributes section / ``#:`` field comments for a dataclass. A
    method without a docstring of its own may inherit the section from the ``simplex_lib`` base
    class method it overrides (:func:`shown_doc`).
    """
    missing = []
    for qualname, obj, is_method in public_callables(modname):
        if inspect.isclass(obj):
            init = obj.__init__ if "__init__" in vars(obj) else None
            if dataclasses.is_dataclass(obj):
                if not dataclasses.fields(obj):
                    continue
                if _has_section(obj, _FIELDS) or _fields_documented(obj):
                    continue
            elif init is None or not _takes_parameters(init, skip_first=True):
                continue
            elif _has_section(obj) or _has_section(init):
                continue
            missing.append(qualname)
        elif _takes_parameters(obj, skip_first=is_method) and not _has_section(obj):
            missing.append(qualname)
    return missing


def empty_entries(modname: str) -> list[str]:
    """Public callables of ``modname`` (methods included) whose shown docstring is empty.

    A method without a docstring of its own counts as documented when it overrides a documented
    method of a ``simplex_lib`` base class (:func:`shown_doc`; ``autodoc_inherit_docstrings``).
    """
    return [q for q, obj, _ in public_callables(modname) if not shown_doc(obj).strip()]


def _fields_documented(cls) -> bool:
    from sphinx.pycode import ModuleAnalyzer

    try:
        docs = ModuleAnalyzer.for_module(cls.__module__).find_attr_docs()
    except Exception:  # noqa: BLE001 - no source
        return False
    qual = cls.__qualname__
    return all((qual, f.name) in docs for f in dataclasses.fields(cls))


# --------------------------------------------------------------------------------------------
# Generated pages


# A change to this file changes every page (through its hash), so Sphinx re-reads them all.
_GENERATOR = hashlib.sha1(Path(__file__).read_bytes()).hexdigest()[:12]


def _page_text(modname: str) -> str:
    return (
        f"<!-- Generated by tools/sphinx/simplex_apidoc.py ({_GENERATOR}) at each build; "
        "do not edit. -->\n\n"
        f"# `{modname}`\n\n"
        f"```{{simplex-module}} {modname}\n```\n"
    )


def write_pages(app) -> None:
    """Write ``book/api/<module>.md`` for every public module; delete pages of vanished modules.

    Connected to ``builder-inited``. A page is rewritten only when its text changes, so that an
    incremental build does not re-read it for nothing (autodoc tracks the module's source itself).
    """
    write_pages_in(Path(app.srcdir))


def write_pages_in(srcdir: Path) -> list[Path]:
    """:func:`write_pages` for the book source folder ``srcdir``; returns the pages."""
    folder = Path(srcdir) / API_DIR
    folder.mkdir(parents=True, exist_ok=True)
    wanted = {}
    for mod in public_modules():
        wanted[folder / f"{mod}.md"] = _page_text(mod)
    for path in folder.glob("*.md"):
        if path not in wanted:
            path.unlink()
    for path, text in wanted.items():
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
    return list(wanted)


class SimplexApiDirective(SphinxDirective):
    """``simplex-api``: a table of the modules, each linking to its page."""

    has_content = False

    def run(self):
        lines = ["| module | what it holds |", "| --- | --- |"]
        for mod in public_modules():
            text = summary(mod).replace("|", "\\|")
            lines.append(f"| {{doc}}`{mod} </{page_docname(mod)}>` | {text} |")
        container = nodes.container()
        self.state.nested_parse(StringList(lines, source=self.get_source_info()[0]), self.content_offset, container)
        return list(container.children)


class SimplexModuleDirective(SphinxDirective):
    """``simplex-module <name>``: autodoc entries for everything a module makes public."""

    required_arguments = 1
    has_content = False

    def run(self):
        mod = self.arguments[0]
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
            refs = ", ".join(f"{{py:obj}}`{name} <{home}.{name}>`" for name, home in links)
            body += ["", f"Also importable from `{mod}`: {refs}."]
        usage = cli_help(mod)
        if usage:
            body += ["", "## Command line", "", f"`python -m {mod} --help`:", "", "```text", *usage.splitlines(), "```"]
        container = nodes.container()
        self.state.nested_parse(StringList(body, source=self.get_source_info()[0]), self.content_offset, container)
        return list(container.children)


def cli_help(modname: str) -> str:
    """The ``--help`` text of a command-line module (one with ``main`` and a ``__main__`` guard).

    ``main(["--help"])`` prints the argparse help and exits before doing any work. Empty when
    the module is not a CLI or prints nothing.
    """
    module = importlib.import_module(modname)
    main = getattr(module, "main", None)
    try:
        source = inspect.getsource(module)
    except (OSError, TypeError):
        return ""
    if not callable(main) or "__main__" not in source or "argparse" not in source:
        return ""
    out = io.StringIO()
    argv0, columns = sys.argv[0], os.environ.get("COLUMNS")
    sys.argv[0] = f"python -m {modname}"
    os.environ["COLUMNS"] = "80"  # fits the page's code block
    doc = inspect.getdoc(module) or ""
    format_help = argparse.ArgumentParser.format_help

    def plain_help(parser):
        # the page shows the module docstring already; other prose loses its reST markup
        parser.description = _plain(parser.description, doc)
        parser.epilog = _plain(parser.epilog, doc)
        return format_help(parser)

    argparse.ArgumentParser.format_help = plain_help
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            main(["--help"])
    except SystemExit:
        pass
    except Exception as exc:  # noqa: BLE001 - the page just has no usage block
        logger.info("simplex_apidoc: no --help for %s (%s)", modname, exc)
        return ""
    finally:
        argparse.ArgumentParser.format_help = format_help
        sys.argv[0] = argv0
        if columns is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = columns
    return out.getvalue().rstrip()


def _plain(text, doc: str):
    """``text`` without reST roles and double backquotes; None when the docstring holds it."""
    if not text or " ".join(text.split()) in " ".join(doc.split()):
        return None
    text = re.sub(r":(?:\w+:)?\w+:`~?([^`]+)`", r"\1", text)
    return re.sub(r"``([^`]+)``", r"\1", text)


_INLINE_VALUE = 90  # a longer value is shown below the name, pretty-printed
_VALUE_LINES = 40


def _data_entry(modname: str, name: str) -> list[str]:
    """A constant: its type and value, and its ``#:`` doc comment if it has one.

    (autodata without a doc comment would show the docstring of the value's type, e.g. dict's.)
    """
    from sphinx.pycode import ModuleAnalyzer

    try:
        docs = ModuleAnalyzer.for_module(modname).find_attr_docs()
    except Exception:  # noqa: BLE001 - no source: no comment
        docs = {}
    value = getattr(importlib.import_module(modname), name)
    text = repr(value)
    lines = [f".. py:data:: {name}", f"   :module: {modname}", f"   :type: {type(value).__name__}"]
    if len(text) <= _INLINE_VALUE and "\n" not in text:
        lines.append(f"   :value: {text}")
    lines.append("")
    lines += [f"   {line}" for line in docs.get(("", name), [])]
    if len(text) > _INLINE_VALUE or "\n" in text:
        pretty = pprint.pformat(value, width=88, compact=True, sort_dicts=False).splitlines()
        if len(pretty) > _VALUE_LINES:
            pretty = pretty[:_VALUE_LINES] + ["..."]
        lines += ["", "   Value::", ""] + [f"      {line}" for line in pretty]
    lines.append("")
    return lines


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


class OrderApiToctree(SphinxTransform):
    """Put the glob of generated pages (alphabetical) into the reading order of :data:`ORDER`.

    Runs after sphinx-external-toc inserts the toctree (priority 100) and before Sphinx records
    it (``doctree-read``).
    """

    default_priority = 150

    def apply(self, **kwargs):
        if self.env.docname != INDEX_DOC:
            return
        from sphinx import addnodes

        prefix = API_DIR + "/"
        for toctree in self.document.findall(addnodes.toctree):
            def key(doc):
                return (0, _order_key(doc[len(prefix):])) if doc.startswith(prefix) else (1, ())

            toctree["entries"] = sorted(toctree["entries"], key=lambda e: key(e[1]))
            toctree["includefiles"] = sorted(toctree["includefiles"], key=key)


_ATTRIBUTE_DOCS: dict[str, list[str]] = {}


def keep_attribute_docs(app, what, name, obj, options, lines):
    """Keep a ``#:`` comment of a field or constant as written (connected around napoleon).

    napoleon reads the first line of an attribute's docstring as ``type: description``, so
    ``#: Peak learning rate: ...`` would render "Peak learning rate" as the type. This handler
    runs before napoleon (priority 400) to remember the lines and after it (priority 600) to
    put them back; the field's type comes from its annotation.
    """
    if what not in ("attribute", "data"):
        return
    if name not in _ATTRIBUTE_DOCS:
        _ATTRIBUTE_DOCS[name] = list(lines)
    else:
        lines[:] = _ATTRIBUTE_DOCS.pop(name)


def _always_reread_index(app, env, added, changed, removed):
    # the table of modules and the glob of pages change when a module is added or removed
    return [INDEX_DOC] if INDEX_DOC in env.found_docs else []


def setup(app):
    app.add_directive("simplex-api", SimplexApiDirective)
    app.add_directive("simplex-module", SimplexModuleDirective)
    app.add_transform(OrderApiToctree)
    app.connect("builder-inited", write_pages)
    app.connect("env-get-outdated", _always_reread_index)
    app.connect("missing-reference", resolve_reexport)
    app.connect("autodoc-process-docstring", keep_attribute_docs, priority=400)  # before napoleon
    app.connect("autodoc-process-docstring", keep_attribute_docs, priority=600)  # and after it
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "2.0"}
