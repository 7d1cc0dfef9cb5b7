"""Interactive explorers for the book.

Each explorer keeps its logic in plain functions (tested without a browser) and one JavaScript
module (``js/<name>.js``) that recomputes the same numbers and draws them, on the static book
page and in notebooks (through anywidget); :mod:`simplex_lib.widgets.explorer` says how.
"""
from .graph_explorer import GraphExplorer  # noqa: F401
from .coverage_explorer import CoverageExplorer  # noqa: F401
from .triangle_explorer import TriangleExplorer  # noqa: F401
from .match3_explorer import Match3Explorer  # noqa: F401

__all__ = ["GraphExplorer", "CoverageExplorer", "TriangleExplorer", "Match3Explorer"]
