"""Where recorded results are found (simplex_lib.runtime.results_dir)."""

from pathlib import Path

import pytest

from simplex_lib import runtime

ROOT = Path(__file__).resolve().parents[1]


def test_results_dir_of_the_checkout(monkeypatch):
    monkeypatch.delenv("SIMPLEX_RESULTS", raising=False)
    assert runtime.results_dir() == ROOT / "benchmarks" / "results"


def test_simplex_results_names_the_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("SIMPLEX_RESULTS", str(tmp_path))
    assert runtime.results_dir() == tmp_path
    monkeypatch.setenv("SIMPLEX_RESULTS", str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="SIMPLEX_RESULTS"):
        runtime.results_dir()


def test_found_from_a_chapter_folder_without_the_checkout_install(monkeypatch, tmp_path):
    """A non-editable install (Binder, the minimal environment): found above the working directory."""
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "notebooks").mkdir()
    monkeypatch.delenv("SIMPLEX_RESULTS", raising=False)
    monkeypatch.setattr(runtime, "__file__", str(tmp_path / "site" / "simplex_lib" / "runtime.py"))
    monkeypatch.chdir(tmp_path / "notebooks")
    assert runtime.results_dir() == tmp_path / "benchmarks" / "results"
    monkeypatch.chdir(tmp_path.parent)
    with pytest.raises(FileNotFoundError, match="first cell"):
        runtime.results_dir()
