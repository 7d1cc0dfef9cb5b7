"""Checks of the built HTML book, without a browser (run after `make book`: marker ``book``)."""

from __future__ import annotations

import html
import re

import pytest

from book_pages import HTML, SRC, chapters, html_pages, toc_files

pytestmark = pytest.mark.book

CHAPTERS = chapters()


def page(name: str) -> str:
    path = HTML / f"{name}.html"
    assert path.is_file(), f"{path} is missing: run `make book` first"
    return path.read_text(encoding="utf-8")


def test_index_redirects_to_landing_page():
    index = HTML / "index.html"
    assert index.is_file(), f"{index} is missing: run `make book` first"
    root = toc_files()[0]
    assert f"{root}.html" in index.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", toc_files())
def test_every_toc_page_is_built(name):
    assert "<main" in page(name)


@pytest.mark.parametrize("name", html_pages())
def test_no_error_output(name):
    html = (HTML / name).read_text(encoding="utf-8")
    # API pages and their source may show an example of the ValueError a bad argument raises
    if not name.startswith(("book/api/", "_modules/")):
        assert "Traceback (most recent call last)" not in html, f"{name} shows a traceback"
    assert not re.search(r'class="output (traceback|error)', html), f"{name} has an error output"
    assert 'class="output stderr' not in html, f"{name} shows stderr output"


@pytest.mark.parametrize("name", CHAPTERS)
def test_chapter_has_a_figure(name):
    html = page(name)
    figures = re.findall(r'<img[^>]+src="[^"]*_images/[^"]+"', html)
    assert figures, f"{name}: no figure (an executed plot is expected in every chapter)"
    for tag in figures:
        src = re.search(r'src="([^"]+)"', tag).group(1)
        assert (HTML / name).parent.joinpath(src).resolve().is_file(), f"{name}: {src} missing"


@pytest.mark.parametrize("name", CHAPTERS)
def test_chapter_has_one_title(name):
    article = re.search(r'<article class="bd-article".*?</article>', page(name), re.S)
    assert article, f"{name}: no article"
    assert len(re.findall(r"<h1[ >]", article.group(0))) == 1, f"{name}: exactly one H1 expected"


@pytest.mark.parametrize("name", CHAPTERS)
def test_launch_and_download_buttons(name):
    html = page(name)
    ipynb = f"{name}.ipynb"
    assert re.search(rf'href="https://colab\.research\.google\.com/github/[^"]+/{re.escape(ipynb)}"', html), (
        f"{name}: no Colab button"
    )
    assert re.search(rf'href="https://mybinder\.org/v2/gh/[^"]+{re.escape(ipynb)}"', html), (
        f"{name}: no Binder button"
    )
    download = re.search(rf'href="([^"]*_sources/{re.escape(ipynb)})"', html)
    assert download, f"{name}: no download link to the .ipynb"
    assert (HTML / name).parent.joinpath(download.group(1)).resolve().is_file()


@pytest.mark.parametrize("name", CHAPTERS)
def test_chapter_cites_the_bibliography(name):
    """Every chapter cites at least one key, and every citation lands on a bibliography entry."""
    html = page(name)
    links = re.findall(r'href="([^"]*bibliography\.html)#([^"]+)"', html)
    assert links, f"{name}: cites nothing (use {{cite:p}}`key` for the sources)"
    bib = page("book/bibliography")
    for _, anchor in links:
        assert f'id="{anchor}"' in bib, f"{name}: citation #{anchor} has no bibliography entry"


def test_chapter_sources_cite_known_keys():
    """Every {cite} key used in a chapter or page is in book/references.bib."""
    keys = set(re.findall(r"@\w+\{([^,]+),", (SRC / "book" / "references.bib").read_text()))
    for name in toc_files():
        src = next((SRC / name).parent.glob((SRC / name).name + ".*"))
        for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", src.read_text(encoding="utf-8")):
            for key in group.split(","):
                assert key.strip() in keys, f"{name}: unknown bibliography key {key.strip()!r}"


def test_offline_assets_are_served_by_the_book():
    """MathJax and the widget scripts come from the book's own _static, not a CDN."""
    html = page(toc_files()[0])
    assert re.search(r'src="[^"]*_static/mathjax/tex-mml-chtml\.js', html), "MathJax is not local"
    assert (HTML / "_static" / "mathjax" / "tex-mml-chtml.js").is_file()
    assert (HTML / "_static" / "require" / "require.js").is_file()
    assert (HTML / "_static" / "widgets" / "embed-amd.js").is_file()
    for name in CHAPTERS:
        text = page(name)
        if "application/vnd.jupyter.widget-view+json" in text:
            assert re.search(r'src="[^"]*_static/widgets/embed-amd\.js', text), f"{name}: widgets JS not local"
            assert re.search(r'src="[^"]*_static/require/require\.js', text), f"{name}: require.js not local"


@pytest.mark.parametrize("name", CHAPTERS)
def test_shown_code_fits_the_column(name):
    # every highlighted Python block of a chapter, its input cells and the library functions
    # that `show_source` displays, fits the 88-column code box (a longer line wraps or scrolls)
    blocks = re.findall(r'<div class="highlight-(?:python|ipython3)[^"]*"><div class="highlight"><pre>(.*?)</pre>',
                        page(name), re.S)
    assert blocks, f"{name}: no code blocks found (has the page's markup changed?)"
    long = [line for b in blocks for line in html.unescape(re.sub(r"<[^>]+>", "", b)).splitlines()
            if len(line) > 88]
    assert not long, f"{name}: {len(long)} shown code lines over 88 columns, e.g. {long[:2]}"
