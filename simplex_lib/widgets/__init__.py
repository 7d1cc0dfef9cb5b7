"""Interactive explorers for the book.

Each explorer keeps its logic in plain functions (tested without a browser) and an ipywidgets
class that only wires controls to them.
"""
from .graph_explorer import GraphExplorer  # noqa: F401
from .coverage_explorer import CoverageExplorer  # noqa: F401
from .triangle_explorer import TriangleExplorer  # noqa: F401
from .match3_explorer import Match3Explorer  # noqa: F401
