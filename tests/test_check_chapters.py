"""`python -m simplex_lib.check_chapters`: argument checks, and real kernels on tiny notebooks."""

import json
import sys

import nbformat
import pytest

from simplex_lib import check_chapters as cc


def write_notebook(path, *sources, markdown_first=True):
    cells = [nbformat.v4.new_markdown_cell("# A chapter")] if markdown_first else []
    cells += [nbformat.v4.new_code_cell(src) for src in sources]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    return path


@pytest.fixture
def chapters(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    # what a reader's kernel is: this interpreter, the chapter's folder as working directory,
    # small sizes unless --full
    write_notebook(folder / "01-ok.ipynb",
                   "import os, sys\n"
                   f"assert sys.executable == {sys.executable!r}, sys.executable\n"
                   f"assert os.getcwd() == {str(folder)!r}, os.getcwd()\n"
                   "print(os.environ['SIMPLEX_FULL'])")
    write_notebook(folder / "02-bad.ipynb", "x = 1", "raise ValueError('boom: n must be positive')",
                   "x = 2")
    write_notebook(folder / "03-slow.ipynb", "import time\ntime.sleep(120)")
    return folder


def test_resolve_chapters_by_number_or_name(tmp_path):
    paths = [tmp_path / n for n in ("01-a.ipynb", "02-b.ipynb", "10-c.ipynb")]
    assert cc.resolve_chapters([], paths) == paths
    assert cc.resolve_chapters(["2", "01", "10-c", "10-c.ipynb"], paths) == [paths[1], paths[0], paths[2]]
    for bad in ("4", "b", "02-b.txt", "0x"):
        with pytest.raises(ValueError, match="unknown chapter"):
            cc.resolve_chapters([bad], paths)


def test_device_slug():
    assert cc.device_slug("NVIDIA H200") == "h200"
    assert cc.device_slug("NVIDIA GeForce RTX 4090") == "geforce_rtx_4090"
    assert cc.device_slug(None) == "cpu"


def test_unknown_chapter_is_a_usage_error(chapters, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cc, "run_chapter", lambda *a, **k: pytest.fail("ran a chapter"))
    with pytest.raises(SystemExit) as exit_:
        cc.main(["01", "07", "--notebooks", str(chapters), "--out", str(tmp_path / "r.json")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("python -m simplex_lib.check_chapters: error: unknown chapter '07'")


@pytest.mark.parametrize("args, message", [
    (["--out", "{file}/r.json"], "cannot create its folder"),
    (["--out", "{tmp}"], "is a folder"),
    (["--out", "/proc/chapters.json"], "is not writable"),
    (["--timeout", "0"], "--timeout must be positive"),
    (["--notebooks", "{tmp}/none"], "no chapters folder"),
])
def test_bad_arguments_fail_before_running(chapters, tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.setattr(cc, "run_chapter", lambda *a, **k: pytest.fail("ran a chapter"))
    (tmp_path / "file").write_text("")
    args = [a.format(tmp=tmp_path, file=tmp_path / "file") for a in args]
    if "--notebooks" not in args:
        args += ["--notebooks", str(chapters)]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "r.json")]
    with pytest.raises(SystemExit) as exit_:
        cc.main(args)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_runs_chapters_in_real_kernels_and_records_the_first_error(chapters, tmp_path, capsys):
    out = tmp_path / "results" / "chapters.json"
    assert cc.main(["1", "2", "--notebooks", str(chapters), "--out", str(out)]) == 1
    printed = capsys.readouterr().out
    assert "01-ok" in printed and "02-bad" in printed and printed.strip().endswith("1 passed, 1 failed")
    record = json.loads(out.read_text())
    assert record["full_size"] is False and record["kernel_python"] == sys.executable
    assert {"device", "torch", "date_utc", "git_commit"} <= set(record["provenance"])
    ok, bad = record["chapters"]
    assert ok["status"] == "passed" and ok["error"] is None and ok["seconds"] > 0
    assert bad["status"] == "failed" and bad["cells"] == 2  # stopped at the error
    assert bad["error"] == {"cell": 2, "name": "ValueError", "message": "boom: n must be positive"}
    assert [i for i, _ in ok["slowest_cells"]] and all(s >= 0 for _, s in ok["slowest_cells"])

    # --update keeps the other chapters; a chapter past its time is a timeout
    assert cc.main(["3", "--notebooks", str(chapters), "--out", str(out), "--update",
                    "--timeout", "5"]) == 1
    record = json.loads(out.read_text())
    assert [r["chapter"] for r in record["chapters"]] == ["01-ok", "02-bad", "03-slow"]
    assert record["chapters"][2]["status"] == "timeout" and record["chapters"][2]["seconds"] < 60
    assert (record["passed"], record["total"]) == (1, 3)


def test_slowest_cells_from_nbclient_timing():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# A chapter")] + [
        nbformat.v4.new_code_cell("pass") for _ in range(4)])
    for cell, (a, b) in zip(nb.cells[1:], [("00.0", "01.5"), ("01.5", "09.0"), ("09.0", "09.1")]):
        cell.metadata["execution"] = {"iopub.execute_input": f"2026-12-05T10:00:{a}00Z",
                                      "shell.execute_reply": f"2026-12-05T10:00:{b}00Z"}
    assert cc.slowest_cells(nb) == [[2, 7.5], [1, 1.5], [3, 0.1]]   # the untimed cell is left out
    assert cc.slowest_cells(nb, top=1) == [[2, 7.5]]


@pytest.mark.slow
def test_full_sizes_reach_the_kernel(chapters, tmp_path):
    result = cc.run_chapter(chapters / "01-ok.ipynb", full=True, timeout=120)
    assert result["status"] == "passed", result
    with pytest.raises(ValueError, match="timeout"):
        cc.run_chapter(chapters / "01-ok.ipynb", timeout=0)


def test_gpu_record_has_every_chapter_passing_in_time():
    """The committed H200 record: every chapter at full size, each within 3 minutes, the book
    within 15, and the README quotes it."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    rec = json.loads((root / "benchmarks" / "results" / "chapters_h200.json").read_text())
    names = sorted(p.stem for p in (root / "notebooks").glob("[0-9][0-9]-*.ipynb"))
    assert rec["full_size"] and rec["provenance"]["device"] == "NVIDIA H200"
    assert [r["chapter"] for r in rec["chapters"]] == names
    assert all(r["status"] == "passed" and r["seconds"] <= 180 for r in rec["chapters"])
    assert rec["passed"] == rec["total"] == len(names) and rec["seconds"] <= 15 * 60
    slowest = max(r["seconds"] for r in rec["chapters"])
    readme = (root / "README.md").read_text()
    assert f"the slowest in {slowest:.0f} s" in readme
    assert f"the whole book in\nabout {rec['seconds'] / 60:.0f} minutes" in readme
