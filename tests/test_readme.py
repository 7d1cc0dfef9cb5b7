"""The README's Python example names modules and functions that exist."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_imports_resolve():
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, "the README shows how to use the library"
    for block in blocks:
        for node in ast.walk(ast.parse(block)):
            if isinstance(node, ast.ImportFrom) and node.module.startswith("simplex_lib"):
                module = importlib.import_module(node.module)
                for alias in node.names:
                    if not hasattr(module, alias.name):  # a submodule imported by name
                        importlib.import_module(f"{node.module}.{alias.name}")
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                    and node.value.id == "simplex_lib":
                assert hasattr(importlib.import_module("simplex_lib"), node.attr), node.attr
    for name in re.findall(r"`simplex_lib\.(\w+)`", text):
        assert hasattr(importlib.import_module("simplex_lib"), name) or \
            importlib.util.find_spec(f"simplex_lib.{name}"), f"README names simplex_lib.{name}"
