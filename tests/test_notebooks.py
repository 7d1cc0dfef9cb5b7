"""Static checks of the chapter notebooks (their execution is checked by the strict book build and,
in a minimal environment, by ``python -m simplex_lib.check_chapters``)."""

import ast
import contextlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

# The first code cell of every chapter, word for word (tag `remove-input`): it makes a chapter run
# where simplex_lib is not installed (Colab, a downloaded notebook). Change it here and in all
# chapters at once.
FIRST_CELL = '''\
# Three ways to run this chapter: Colab (Runtime > Change runtime type > GPU for full sizes), Binder
# (CPU, small sizes) or your clone of the repository (`make lab`). Where simplex_lib is installed
# this cell does nothing; elsewhere (Colab, a downloaded notebook) it clones the repository,
# installs the library from the clone and points the chapter at the recorded results there.
import importlib.util, os, subprocess, sys
REPO = "https://github.com/simplex-lib/higher-order-attention"
CLONE = os.path.abspath(REPO.rsplit("/", 1)[-1])
if importlib.util.find_spec("simplex_lib") is None:
    if not os.path.isdir(CLONE):
        subprocess.run(["git", "clone", "-q", "--depth=1", REPO, CLONE], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", CLONE], check=True)
    importlib.invalidate_caches()
    print(f"Installed simplex_lib from {REPO}; recorded results: {CLONE}/benchmarks/results")
if os.path.isdir(CLONE + "/benchmarks/results"):
    os.environ.setdefault("SIMPLEX_RESULTS", CLONE + "/benchmarks/results")'''

# Packages that build the book; a chapter runs in kernels that have none of them.
BUILD_PACKAGES = ("jupyter_book", "myst_nb", "myst_parser", "sphinx", "sphinxcontrib", "sphinx_book_theme",
                  "docutils", "jupyter_cache", "sphinx_design", "pydata_sphinx_theme")


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
            tags = c.metadata.get("tags", [])
            # one toggle hides the code and its output together, labelled as a solution
            assert "hide-input" in tags and "hide-cell" in tags, "solutions are hidden behind a toggle"
            assert c.metadata.get("mystnb", {}).get("code_prompt_show", "").startswith("Solution"), (
                "a solution's toggle says it is a solution")
            assert "assert" in c.source, "each solution checks itself"

    def test_visible_code_fits_the_column(self, path):
        # 88 columns fit the code box of a 1280-pixel window (tools/sphinx/static/book.css);
        # a longer line would hide behind a horizontal scrollbar
        hidden = {"remove-cell", "remove-input", "hide-input", "hide-cell"}
        long = [(i, line) for i, c in enumerate(self.nb(path).cells)
                if c.cell_type == "code" and not hidden & set(c.metadata.get("tags", []))
                for line in c.source.splitlines() if len(line) > 88]
        assert not long, f"{path.name}: visible code lines over 88 columns: {long[:3]}"

    def test_first_code_cell_is_the_run_anywhere_cell(self, path):
        cells = [c for c in self.nb(path).cells if c.cell_type == "code"]
        assert cells[0].source == FIRST_CELL, (
            f"{path.name}: the first code cell must be FIRST_CELL of tests/test_notebooks.py, word for word")
        assert "remove-input" in cells[0].metadata.get("tags", []), path.name

    def test_imports_no_book_build_package(self, path):
        for i, cell in enumerate(self.nb(path).cells):
            if cell.cell_type != "code":
                continue
            # IPython magics and shell escapes are not Python: blank them before parsing
            code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line
                              for line in cell.source.splitlines())
            for node in ast.walk(ast.parse(code)):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    names = [node.module or ""]
                else:
                    continue
                for name in names:
                    assert name.split(".")[0] not in BUILD_PACKAGES, (
                        f"{path.name} cell {i} imports {name}: a book-build package, missing in a "
                        "reader's kernel (use simplex_lib.book.record)")
            for package in BUILD_PACKAGES:
                assert not re.search(rf"import_module\(\s*[\'\"]{package}\b", code), (path.name, i)


def _run_first_cell(monkeypatch, tmp_path, installed):
    """Execute FIRST_CELL in ``tmp_path`` with the package present or missing; no network, no pip."""
    import importlib.util

    calls = []

    def fake_run(cmd, check=False, **kw):
        calls.append(list(cmd))
        if cmd[:2] == ["git", "clone"]:  # what a clone brings that the cell relies on
            (Path(cmd[-1]) / "benchmarks" / "results").mkdir(parents=True)
        return subprocess.CompletedProcess(cmd, 0)

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: real_find_spec(name, *a) if installed or name != "simplex_lib"
                        else None)
    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SIMPLEX_RESULTS", raising=False)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(FIRST_CELL, "first-cell", "exec"), {})
    return calls, out.getvalue(), os.environ.get("SIMPLEX_RESULTS")


def test_first_cell_does_nothing_where_the_package_is_installed(monkeypatch, tmp_path):
    calls, printed, results = _run_first_cell(monkeypatch, tmp_path, installed=True)
    assert calls == [] and printed == "" and results is None


def test_first_cell_installs_from_the_repository_where_the_package_is_missing(monkeypatch, tmp_path):
    calls, printed, results = _run_first_cell(monkeypatch, tmp_path, installed=False)
    url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    clone = str(tmp_path / url.rsplit("/", 1)[-1])
    assert calls[0] == ["git", "clone", "-q", "--depth=1", url, clone]
    # non-editable, so that the running kernel imports it at once
    assert calls[1] == [sys.executable, "-m", "pip", "install", "-q", clone]
    assert "-e" not in calls[1] and "--editable" not in calls[1]
    assert len(calls) == 2
    assert len(printed.splitlines()) == 1 and url in printed
    assert results == clone + "/benchmarks/results"


def test_first_cell_clones_once(monkeypatch, tmp_path):
    url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    (tmp_path / url.rsplit("/", 1)[-1] / "benchmarks" / "results").mkdir(parents=True)
    calls, _, results = _run_first_cell(monkeypatch, tmp_path, installed=False)
    assert [c[:2] for c in calls] == [[sys.executable, "-m"]]  # pip only: the clone is there
    assert results.endswith("/benchmarks/results")


def test_launch_buttons_open_the_chapter():
    """Colab and Binder buttons are built from repository.url + path_to_book + the page's path."""
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert cfg["repository"]["url"].startswith("https://github.com/")  # Colab opens GitHub files only
    assert cfg["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert cfg["launch_buttons"]["binderhub_url"] == "https://mybinder.org"
    book_root = ROOT / cfg["repository"].get("path_to_book", "")
    for f in toc_files():
        if f.startswith("notebooks/"):
            assert (book_root / f"{f}.ipynb").is_file(), f


def test_readme_landing_page_and_first_cell_describe_the_same_three_ways():
    texts = {"README.md": (ROOT / "README.md").read_text(), "book/intro.md": (ROOT / "book/intro.md").read_text(),
             "first cell": FIRST_CELL}
    for name, text in texts.items():
        for way in ("Colab", "Binder", "make lab"):
            assert way in text, f"{name} does not mention {way}"
        assert "pip install -e" not in text, f"{name}: an editable install needs a kernel restart"


def _chapter_imports():
    names = set()
    for path in NOTEBOOKS:
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type != "code":
                continue
            code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line
                             for line in cell.source.splitlines())
            for node in ast.walk(ast.parse(code)):
                if isinstance(node, ast.Import):
                    names |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    names.add(node.module.split(".")[0])
    return names


def test_chapters_import_only_declared_dependencies():
    """What a chapter imports is in `pip install ".[notebooks]"` (torch and triton come first)."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    from importlib.metadata import packages_distributions

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    declared = set()
    for req in project["dependencies"] + extras["notebooks"] + extras["widgets"]:
        declared.add(re.split(r"[\[<>=!~; ]", req, maxsplit=1)[0].lower().replace("_", "-"))
    provided_elsewhere = {"simplex_lib", "torch", "triton", "IPython"}  # IPython: with ipykernel
    dists = packages_distributions()
    for name in sorted(_chapter_imports() - set(sys.stdlib_module_names) - provided_elsewhere):
        owners = {d.lower().replace("_", "-") for d in dists.get(name, [name])}
        assert owners & declared, f"chapters import {name} ({owners}), not a declared dependency"


def test_notebooks_extra_has_a_kernel_and_no_book_build():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    notebooks = " ".join(extras["notebooks"])
    for needed in ("ipykernel", "nbclient", "[widgets]"):
        assert needed in notebooks
    for build in ("jupyter-book", "myst", "sphinx"):
        assert build not in notebooks


def test_binder_installs_cpu_torch_triton_and_the_package():
    reqs = (ROOT / "binder" / "requirements.txt").read_text()
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in reqs
    assert re.search(r"^torch==[\d.]+\+cpu$", reqs, re.M) and re.search(r"^triton==", reqs, re.M)
    post = ROOT / "binder" / "postBuild"
    assert os.access(post, os.X_OK), "binder/postBuild must be executable"
    assert 'pip install --no-cache-dir ".[notebooks]"' in post.read_text()
