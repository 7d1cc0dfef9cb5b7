"""Author–year citations for the book: "(Roy et al., 2025)" in the text, the same label in the bibliography.

sphinxcontrib-bibtex's ``author_year`` referencing style writes the text's citations, but the
bibliography's labels come from the pybtex formatting style (``alpha`` by default: "[RCD+25]").
This extension registers

- ``book_author_year`` (pybtex formatting style, ``bibtex_default_style``): the ``unsrt`` entry
  format, sorted by author, year and title (pybtex sorting style of the same name), labelled
  "Roy et al., 2025";
- ``book_author_year`` (pybtex label style): that label, with "a", "b", ... when two works
  would share one;
- ``book_author_year`` (sphinxcontrib-bibtex referencing style, ``bibtex_reference_style``):
  ``author_year`` with round brackets and a plain "et al.", so that ``{cite:p}`` reads
  "(Roy et al., 2025)" and ``{cite:t}`` "Roy et al. (2025)".
"""

from __future__ import annotations

import dataclasses
from collections import Counter

import pybtex.plugin
from pybtex.richtext import Text
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.labels import BaseLabelStyle
from pybtex.style.sorting import BaseSortingStyle
from sphinxcontrib.bibtex.plugin import register_plugin as register_referencing
from sphinxcontrib.bibtex.style.referencing import BracketStyle, PersonStyle
from sphinxcontrib.bibtex.style.referencing.author_year import AuthorYearReferenceStyle

NAME = "book_author_year"
ET_AL = " et al."


def _last_name(person) -> str:
    return str(Text.from_latex(" ".join(person.prelast_names + person.last_names)))


def author_text(entry) -> str:
    """"Roy", "Dao and Gu" or "Roy et al." (the form the referencing style writes)."""
    persons = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [_last_name(p) for p in persons]
    if not names:
        return str(Text.from_latex(entry.fields.get("title", entry.key)))
    if len(names) >= 3 or (len(names) == 2 and names[1] == "others"):
        return names[0] + ET_AL
    return " and ".join(names)


class LabelStyle(BaseLabelStyle):
    """"Author, year" labels, with a letter after the year when two entries would share one."""

    def format_labels(self, sorted_entries):
        labels = [f"{author_text(e)}, {e.fields.get('year', 'n.d.')}" for e in sorted_entries]
        count, seen = Counter(labels), Counter()
        for label in labels:
            if count[label] == 1:
                yield label
            else:
                yield label + "abcdefghijklmnopqrstuvwxyz"[seen[label]]
                seen[label] += 1


class SortingStyle(BaseSortingStyle):
    """By the label's author text, then year and title (so "{DeepSeek-AI}" sorts under D)."""

    def sorting_key(self, entry):
        return (author_text(entry).lower(), entry.fields.get("year", ""), entry.fields.get("title", "").lower())


class Style(UnsrtStyle):
    """``unsrt`` entries, sorted like their labels, with author–year labels."""

    default_label_style = NAME
    default_sorting_style = NAME


def _round() -> BracketStyle:
    return BracketStyle(left="(", right=")", sep="; ")


@dataclasses.dataclass
class ReferenceStyle(AuthorYearReferenceStyle):
    """sphinxcontrib-bibtex's author–year citations with round brackets and a plain "et al."."""

    bracket_textual: BracketStyle = dataclasses.field(default_factory=_round)
    bracket_parenthetical: BracketStyle = dataclasses.field(default_factory=_round)
    bracket_author: BracketStyle = dataclasses.field(default_factory=_round)
    bracket_label: BracketStyle = dataclasses.field(default_factory=_round)
    bracket_year: BracketStyle = dataclasses.field(default_factory=_round)
    person: PersonStyle = dataclasses.field(default_factory=lambda: PersonStyle(other=ET_AL))


def register() -> None:
    pybtex.plugin.register_plugin("pybtex.style.labels", NAME, LabelStyle, force=True)
    pybtex.plugin.register_plugin("pybtex.style.sorting", NAME, SortingStyle, force=True)
    pybtex.plugin.register_plugin("pybtex.style.formatting", NAME, Style, force=True)
    register_referencing("sphinxcontrib.bibtex.style.referencing", NAME, ReferenceStyle, force=True)


def setup(app):
    register()
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1.0"}
