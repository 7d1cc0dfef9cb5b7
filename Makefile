# Two commands do all set-up on a fresh machine:
#   make book   create .venv if needed, install, build the HTML book (every notebook executed)
#   make test   the same set-up, then the whole suite (unit tests, strict book build, checks of the built book)
# Installs are cached in .venv: a second run only re-installs when requirements change.

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

.PHONY: install book test unit book-check lab clean

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$(TORCH_SPEC)" $(TRITON_SPEC)
	$(PIP) install -q -r requirements.txt
	$(PIP) install -q --no-deps -e .
	@touch $(STAMP)

book: $(STAMP)
	$(VENV)/bin/jupyter-book build $(JB_FLAGS) .
	@echo "Book built: _build/html/index.html"

# Unit tests first (fast failure), then the strict book build, then the checks of
# the built HTML. pytest's summary line is the last thing printed.
test: $(STAMP)
	$(PY) -m pytest -q -m "not book" -n 2
	$(MAKE) --no-print-directory book
	$(PY) -m pytest -q -m book

unit: $(STAMP)
	$(PY) -m pytest -q -m "not book" -n 2

lab: $(STAMP)
	@$(PY) -c "import jupyterlab" 2>/dev/null || $(PIP) install -q "jupyterlab>=4.2,<5"
	$(VENV)/bin/jupyter lab notebooks/

clean:
	rm -rf _build
