# Two commands on a fresh machine with Python 3.11 and make: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PROMPT ?= A lighthouse keeper who befriends a lost whale

.PHONY: demo test lint bench clean redis chromium postgres

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test,models,celery,edge,writer,scale,storage]'
	@# An offline mirror may hold only the CUDA build of torchvision, whose operators do not load against
	@# the CPU torch (and then break every transformers image processor): removed, with a notice.
	@$(BIN)/python -c 'import torchvision' 2>/dev/null || { $(BIN)/pip uninstall -q -y torchvision; \
	  echo "torchvision removed: it does not load against this torch (install its +cpu build for Qwen-VL)"; }
	touch $@

demo: $(VENV)/.installed
	$(BIN)/storybot make "$(PROMPT)" --yes

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint redis chromium postgres
	$(BIN)/pytest -q

# The Celery GPU tests start their own redis-server (Debian package, ~7 MB) on a free port.
redis:
	@command -v redis-server >/dev/null || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends redis-server; }

# The several-machines tests start their own PostgreSQL (Debian's, as the postgres user) on a free port.
postgres:
	@test -x /usr/lib/postgresql/15/bin/initdb || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends postgresql; }

# The job page's browser test drives Debian's headless Chromium over the DevTools protocol.
chromium:
	@command -v chromium >/dev/null || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends chromium; }

bench: $(VENV)/.installed-test
	$(BIN)/python bench/render.py
	$(BIN)/python bench/voices.py
	$(BIN)/python bench/pipeline.py
	$(BIN)/python bench/workers.py
	$(BIN)/python bench/api.py

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache
