"""The explorers' front end: the ES modules, the static page's HTML, anywidget, the fallback.

The JavaScript maths runs here under Node.js (skipped without ``node``) on the same bundle
anywidget loads, and is compared with the Python state functions; the browser test of the built
book (tests/test_browser.py) repeats the comparison on the static page, with the drawing.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import torch

from explorer_parity import EXPLORERS, MOVES, problems
from simplex_lib.widgets import explorer as xp
from simplex_lib.widgets import graph_explorer as ge
from simplex_lib.widgets import triangle_explorer as tx

NAMES = list(EXPLORERS)


@pytest.mark.parametrize("name", NAMES)
def test_bundle_is_one_module_with_render(name):
    src = xp.esm_source(name)
    assert "./common.js" not in src and "import {" not in src
    assert "export function render" in src and "export function staticModel" in src
    assert (xp.JS_DIR / f"{name}.js").is_file()


def test_unknown_module_is_an_error():
    with pytest.raises(ValueError, match="name"):
        xp.esm_source("nope")


def test_base64_round_trip(gen):
    x = torch.randn(3, 5, generator=gen, dtype=torch.float64)
    import base64

    back = torch.frombuffer(bytearray(base64.b64decode(xp.f64_base64(x))), dtype=torch.float64)
    assert torch.equal(back.view(3, 5), x)


def test_static_model_ships_every_offered_seed():
    ex = EXPLORERS["graph"]()
    m = ex.model(static=True)
    seed = next(c for c in m["spec"]["controls"] if c["name"] == "seed")
    assert seed["type"] == "values" and seed["values"] == [0, 1, 2, 3, 4]
    assert set(m["data"]) == {f"{s}/{n}" for s in range(5) for n in range(1, 17)}
    t = ge.make_tokens(3, 7, 8, sink=2.0)
    got = xp.f64_base64(t["q"])
    assert m["data"]["3/7"]["q"] == got
    # the kernel's model carries only the current inputs, and the full seed range
    live = ex.model(static=False)
    assert list(live["data"]) == ["0/10"]
    assert next(c for c in live["spec"]["controls"] if c["name"] == "seed")["max"] == 20


def test_static_html_imports_the_module(monkeypatch):
    ex = EXPLORERS["triangle"]()
    monkeypatch.setenv(xp.STATIC_ENV, "static")
    bundle = ex._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" not in bundle
    html = bundle["text/html"]
    assert '<script type="module">' in html and '"triangle.js"' in html
    assert "_static/explorers/" in html and "</script" not in html.split("-model\">")[1].split("</script>")[0]
    model = json.loads(html.split('-model">')[1].split("</script>")[0].replace("<\\/", "</"))
    assert model["values"]["seed"] == 1 and "1/10/4" in model["data"]
    assert html == ex.static_html()  # deterministic: the same page for the same explorer


def test_fallback_without_anywidget(monkeypatch):
    monkeypatch.delenv(xp.STATIC_ENV, raising=False)
    monkeypatch.setattr(xp, "_widget_class", lambda name: None)
    ex = EXPLORERS["match3"]()
    bundle = ex._repr_mimebundle_()
    assert ex.widget is None
    assert "pip install anywidget" in bundle["text/html"] and "data:image/png;base64," in bundle["text/html"]


def test_anywidget_fetches_inputs_for_a_new_seed(monkeypatch):
    pytest.importorskip("anywidget")
    monkeypatch.delenv(xp.STATIC_ENV, raising=False)
    ex = EXPLORERS["triangle"]()
    w = ex.widget
    assert w._esm == xp.esm_source("triangle") and "1/10/4" in w.data
    bundle = ex._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle  # (data, metadata) from ipywidgets
    assert "application/vnd.jupyter.widget-view+json" in data
    w.values = {**w.values, "seed": 37, "head_dim": 13}  # what the front end sends
    assert ex.values["seed"] == 37 and "37/10/13" in w.data
    t = tx.make_tokens(37, 10, 13)
    assert w.data["37/10/13"]["k2"] == xp.f64_base64(t["k2"][0, :, 0])
    assert ex.state["seed"] == 37
    ex.set(seed=2)  # and the other way: Python's settings reach the front end
    assert w.values["seed"] == 2
    ex.close()


NODE = shutil.which("node")

_DRIVER = """
import * as m from "./%s.mjs";
const cases = JSON.parse(await (await import("node:fs/promises")).readFile(process.argv[2], "utf8"));
const out = cases.map((c) => m.stateOf(c.values, c.spec, c.data));
process.stdout.write(JSON.stringify(out));
"""


@pytest.mark.skipif(NODE is None, reason="Node.js is not installed")
@pytest.mark.parametrize("name", NAMES)
def test_javascript_reproduces_python(name, tmp_path):
    ex = EXPLORERS[name]()
    model = ex.model(static=True)
    cases = [{"values": dict(ex.values)}]
    for control, value in MOVES[name]:
        ex.set(**{control: value})
        cases.append({"values": dict(ex.values)})
    for c in cases:
        c["spec"], c["data"] = model["spec"], model["data"]
    (tmp_path / f"{name}.mjs").write_text(xp.esm_source(name))
    (tmp_path / "driver.mjs").write_text(_DRIVER % name)
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    run = subprocess.run([NODE, str(tmp_path / "driver.mjs"), str(tmp_path / "cases.json")],
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    states = json.loads(run.stdout)
    bad = {}
    for c, js in zip(cases, states):
        assert js is not None, f"no inputs for {c['values']}"
        found = problems(name, js)
        if found:
            bad[json.dumps(c["values"])] = found
    assert not bad, bad
