"""Interactive explorers for the book.

Each explorer keeps its logic in plain functions (tested without a browser) and an ipywidgets
class that only wires controls to them.
"""
