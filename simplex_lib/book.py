"""Two helpers a chapter uses to talk to the page: show library code, record values for the text.

Both work in any Jupyter kernel.  Neither needs the book-build packages: under the book's build
(myst-nb) :func:`record` also stores the value for ``{glue}`` references in the text; in a plain
kernel (Colab, JupyterLab, VS Code) it only displays it, or does nothing.
"""

from __future__ import annotations

import inspect
import textwrap
from typing import Any

__all__ = ["show_source", "record"]


def show_source(*objects: Any):
    """Display the whole source of named functions or classes, highlighted as Python.

    Pass the objects themselves (``show_source(forward.tile_step)``), never strings: a name that
    disappears from the library raises ``AttributeError`` where the chapter names it, so the
    book's build fails instead of showing something else.

    Returns an ``IPython.display.Markdown`` with one fenced code block (the build renders it
    with the book's highlighting); outside IPython, the source text.

    Parameters
    ----------
    *objects : function or class
        One or more; decorated functions are unwrapped, a ``@triton.jit`` kernel shows its
        Python function. Their sources are joined by a blank line, each dedented.

    Returns
    -------
    IPython.display.Markdown, or str without IPython.

    Raises
    ------
    ValueError
        If no object is given, or one is not a function or class.
    """
    if not objects:
        raise ValueError("show_source needs at least one function or class")
    blocks = []
    for obj in objects:
        target = inspect.unwrap(getattr(obj, "fn", obj))  # a @triton.jit function keeps .fn
        if not (inspect.isfunction(target) or inspect.isclass(target)):
            raise ValueError(f"show_source takes functions or classes, got {type(obj).__name__}")
        blocks.append(textwrap.dedent(inspect.getsource(target)).rstrip())
    text = "\n\n".join(blocks)
    try:
        from IPython.display import Markdown
    except ImportError:  # pragma: no cover - IPython is present in every notebook kernel
        return text
    return Markdown(f"```python\n{text}\n```")


def record(name: str, value: Any, display: bool = False):
    """Record ``value`` under ``name`` for the book's text; show it when ``display`` is true.

    Under the book's build this is myst-nb's ``glue`` (the text refers to ``{glue}`name```).
    Elsewhere nothing is stored: the value is displayed when asked.  Returns ``None``, as
    ``glue`` does, so that a cell ending in ``record(...)`` prints nothing twice.

    Parameters
    ----------
    name : str
        Non-empty key, as the text's ``{glue}`` role names it.
    value : object
        A number, string, figure, DataFrame, ...: whatever ``glue`` can display.
    display : bool, default False
        Also show the value in the cell's output.

    Raises
    ------
    ValueError
        If ``name`` is not a non-empty string.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    try:
        from myst_nb import glue
    except ImportError:
        glue = None
    if glue is not None:
        glue(name, value, display=display)
    elif display:
        try:
            from IPython.display import display as show
        except ImportError:  # pragma: no cover
            print(value)
        else:
            show(value)
