# Two commands do all set-up on a fresh machine:
#   make book   create .venv if needed, install, fetch the book's pinned browser assets (npm),
#               build the HTML book (every notebook executed)
#   make test   the same set-up, then the whole suite (unit tests, strict book build, checks of the
#               built book, including headless Chromium when it is installed)
# Installs are cached (.venv, tools/web/node_modules): a second run only re-installs when
# requirements.txt / pyproject.toml / tools/web/package-lock.json change.

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

.PHONY: install assets book test unit fuzz book-check lab clean

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$(TORCH_SPEC)" $(TRITON_SPEC)
	$(PIP) install -q -r requirements.txt
	$(PIP) install -q --no-deps -e .
	@touch $(STAMP)

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

# Unit tests first (fast failure), then the strict book build, then the checks of
# the built HTML. pytest's summary line is the last thing printed.
test: $(STAMP)
	$(PY) -m pytest -q -m "not book and not fuzz" -n 2
	$(MAKE) --no-print-directory book
	$(PY) -m pytest -q -m book

unit: $(STAMP)
	$(PY) -m pytest -q -m "not book and not fuzz" -n 2

# Random exploration: a fresh seed per test each run, printed; replay one with SIMPLEX_SEED=N.
fuzz: $(STAMP)
	$(PY) -m pytest -q -m fuzz -n 2

lab: $(STAMP)
	@$(PY) -c "import jupyterlab" 2>/dev/null || $(PIP) install -q "jupyterlab>=4.2,<5"
	$(VENV)/bin/jupyter lab notebooks/

clean:
	rm -rf _build $(OFFLINE)
