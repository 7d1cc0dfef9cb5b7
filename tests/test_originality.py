"""The book is written in our own words: no long verbatim runs from the source documents.

The sources (the blog post and the paper) live in ``../shared/seeds`` beside the checkout; the
test is skipped where they are absent.
"""

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT.parent / "shared" / "seeds"
RUN = 10  # words in a row that may not appear verbatim in a source


def words(text: str) -> list[str]:
    # Equations carry over from the sources by design; only prose is compared.
    text = re.sub(r"\$\$.*?\$\$", " ", text, flags=re.S)
    text = re.sub(r"\\begin\{(\w+\*?)\}.*?\\end\{\1\}", " ", text, flags=re.S)
    text = re.sub(r"\$[^$]*\$", " ", text)
    return re.findall(r"[a-z0-9]+(?:'[a-z]+)?", text.lower())


def shingles(ws: list[str], n: int = RUN) -> set[tuple]:
    return {tuple(ws[i : i + n]) for i in range(len(ws) - n + 1)}


def our_texts():
    for nb_path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(nb_path, as_version=4)
        yield nb_path.name, "\n".join(c.source for c in nb.cells)
    for md in sorted((ROOT / "book").glob("*.md")):
        yield md.name, md.read_text()
    for py in sorted((ROOT / "simplex_lib").rglob("*.py")):
        yield str(py.relative_to(ROOT)), py.read_text()
    yield "README.md", (ROOT / "README.md").read_text()


@pytest.mark.skipif(not SEEDS.is_dir(), reason="source documents not beside the checkout")
def test_no_long_verbatim_runs_from_the_sources():
    source = set()
    for f in SEEDS.glob("*.txt"):
        source |= shingles(words(f.read_text(errors="ignore")))
    hits = []
    for name, text in our_texts():
        common = shingles(words(text)) & source
        if common:
            hits.append(f"{name}: {' '.join(sorted(common)[0])!r} (+{len(common) - 1} more)")
    assert not hits, "verbatim runs of the sources:\n" + "\n".join(hits)
