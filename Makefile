# Two commands do all set-up on a fresh machine:
#   make book   create .venv if needed, install, fetch the book's pinned browser assets (npm),
#               build the HTML book (every notebook executed)
#   make test   the same set-up, then the whole suite (unit tests, every chapter run in a minimal
#               environment, strict book build, checks of the built book, including headless
#               Chromium when it is installed)
# Installs are cached (.venv, .venv-min, tools/web/node_modules): a second run only re-installs
# when requirements.txt / pyproject.toml / tools/web/package-lock.json change.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed

# On a machine without an NVIDIA driver we install the CPU wheel of torch and run
# the Triton kernels under TRITON_INTERPRET=1; with a GPU, the CUDA build (which
# brings its own Triton). Override with e.g. `make TORCH_SPEC="torch==2.11.0" book`.
HAVE_GPU   := $(shell nvidia-smi -L >/dev/null 2>&1 && echo 1)
ifeq ($(HAVE_GPU),1)
TORCH_SPEC ?= torch
TRITON_SPEC ?=
else
TORCH_SPEC ?= torch==2.13.0
TRITON_SPEC ?= triton==3.6.0
endif

JB_FLAGS := -W -n --keep-going

# Browser assets the book serves itself (MathJax, RequireJS, ipywidgets HTML manager), pinned in
# tools/web/package-lock.json, installed with npm and copied into book/_static_offline (not in
# git). Redone only when the lock file changes. The live explorers need no npm package: their ES
# modules are package data of simplex_lib (simplex_lib/widgets/js), copied into _static/explorers
# by tools/sphinx/book_html.py at every build.
WEB      := tools/web
OFFLINE  := book/_static_offline
ASSETS   := $(OFFLINE)/.installed
NPM      ?= npm

# The chapters as a reader runs them (Colab, Binder, a plain Jupyter): a separate environment with
# only torch, triton, the package installed from this checkout as a wheel (not editable) with its
# `notebooks` extra (kernel, widgets, nbclient), and no book-build package. It catches an import
# that only the book's build environment satisfies.
VENV_MIN  := .venv-min
PY_MIN    := $(VENV_MIN)/bin/python
STAMP_MIN := $(VENV_MIN)/.installed
# the record of that run: scratch, kept beside the environment (benchmarks/results holds GPU runs)
CHAPTERS_RECORD ?= $(CURDIR)/$(VENV_MIN)/chapters.json

.PHONY: install assets book test unit lint fuzz book-check lab clean chapters-min

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$(TORCH_SPEC)" $(TRITON_SPEC)
	$(PIP) install -q -r requirements.txt
	@touch $(STAMP)

$(STAMP_MIN): pyproject.toml
	@test -x $(PY_MIN) || $(PYTHON) -m venv $(VENV_MIN)
	$(PY_MIN) -m pip install -q "$(TORCH_SPEC)" $(TRITON_SPEC)
	$(PY_MIN) -m pip install -q ".[notebooks]"
	@touch $(STAMP_MIN)

# Every chapter at small sizes in a kernel of .venv-min. The package is re-installed from this
# checkout each time (a clean wheel: no stale modules); the check runs outside the checkout so
# that Python imports the installed copy, not ./simplex_lib.
chapters-min: $(STAMP_MIN)
	rm -rf build
	$(PY_MIN) -m pip install -q --no-deps --force-reinstall .
	rm -rf build
	cd $(VENV_MIN) && bin/python -m simplex_lib.check_chapters --notebooks "$(CURDIR)/notebooks" \
	  --out "$(CHAPTERS_RECORD)"

assets: $(ASSETS)

$(ASSETS): $(WEB)/package.json $(WEB)/package-lock.json
	@command -v $(NPM) >/dev/null || { echo "npm (Node.js) is needed once, to install the book's MathJax and widget scripts"; exit 1; }
	cd $(WEB) && $(NPM) ci --ignore-scripts --no-audit --no-fund --loglevel=error
	rm -rf $(OFFLINE) && mkdir -p $(OFFLINE)/widgets $(OFFLINE)/require
	cp -R $(WEB)/node_modules/mathjax/es5 $(OFFLINE)/mathjax
	cp $(WEB)/node_modules/requirejs/require.js $(OFFLINE)/require/require.js
	cd $(WEB)/node_modules/@jupyter-widgets/html-manager/dist && \
	  cp embed-amd.js *.woff *.woff2 *.ttf *.eot *.svg $(CURDIR)/$(OFFLINE)/widgets/
	@touch $@

book: $(STAMP) $(ASSETS)
	$(VENV)/bin/jupyter-book build $(JB_FLAGS) .
	@echo "Book built: _build/html/index.html"

# Unit tests first (fast failure), then every chapter in the minimal environment, then the strict
# book build, then the checks of the built HTML. pytest's summary line is the last thing printed.
test: $(STAMP)
	$(MAKE) --no-print-directory lint
	$(PY) -m pytest -q -m "not book and not fuzz" -n 2 tests simplex_lib --doctest-modules
	$(MAKE) --no-print-directory chapters-min
	$(MAKE) --no-print-directory book
	$(PY) -m pytest -q -m book

unit: $(STAMP)
	$(PY) -m pytest -q -m "not book and not fuzz" -n 2 tests simplex_lib --doctest-modules

# ruff over the library, the tests, the benchmarks, the Sphinx extensions and the chapters
lint: $(STAMP)
	$(VENV)/bin/ruff check simplex_lib tests benchmarks tools notebooks

# Random exploration: a fresh seed per test each run, printed; replay one with SIMPLEX_SEED=N.
fuzz: $(STAMP)
	$(PY) -m pytest -q -m fuzz -n 2

# Chapters in JupyterLab, in .venv's kernel: small sizes on a CPU, full sizes where CUDA is
# available (simplex_lib.full_size(); SIMPLEX_FULL=0/1 overrides).
lab: $(STAMP)
	@$(PY) -c "import jupyterlab" 2>/dev/null || $(PIP) install -q "jupyterlab>=4.2,<5"
	$(VENV)/bin/jupyter lab notebooks/

clean:
	rm -rf _build $(OFFLINE)
