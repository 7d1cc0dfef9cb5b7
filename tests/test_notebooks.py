"""Static checks of the chapter notebooks (their execution is checked by the strict book build)."""

import re
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def toc_files():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [c["file"] for c in part.get("chapters", [])]
    return files


def test_every_toc_entry_exists():
    for f in toc_files():
        assert any((ROOT / f"{f}{ext}").exists() for ext in (".md", ".ipynb")), f


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
class TestChapter:
    def nb(self, path):
        return nbformat.read(path, as_version=4)

    def test_listed_in_toc(self, path):
        assert f"notebooks/{path.stem}" in toc_files(), f"{path.name} is not in _toc.yml"

    def test_committed_without_outputs(self, path):
        for cell in self.nb(path).cells:
            if cell.cell_type == "code":
                assert not cell.outputs, f"{path.name} has stored outputs: the build executes it"

    def test_one_title(self, path):
        h1 = [line for c in self.nb(path).cells if c.cell_type == "markdown"
              for line in c.source.splitlines() if re.match(r"^# \S", line)]
        assert len(h1) == 1, f"{path.name} must have exactly one level-1 title, found {h1}"

    def test_imports_the_library(self, path):
        code = "\n".join(c.source for c in self.nb(path).cells if c.cell_type == "code")
        assert re.search(r"^\s*(import|from) simplex_lib", code, re.M), path.name

    def test_cites_sources(self, path):
        text = "\n".join(c.source for c in self.nb(path).cells if c.cell_type == "markdown")
        assert "{cite:" in text, f"{path.name} cites nothing"

    def test_exercises_have_checked_solutions(self, path):
        cells = self.nb(path).cells
        assert any(c.cell_type == "markdown" and re.search(r"^## Exercises", c.source, re.M)
                   for c in cells), f"{path.name} has no '## Exercises' section"
        solutions = [c for c in cells if c.cell_type == "code"
                     and "solution" in c.metadata.get("tags", [])]
        assert solutions, f"{path.name} has no solution cells (tag 'solution')"
        for c in solutions:
            assert "hide-input" in c.metadata.get("tags", []), "solutions are hidden behind a toggle"
            assert "assert" in c.source, "each solution checks itself"
