# Quick start: `make demo` (install + run the main job), `make test` (install dev extras + run the tests).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU wheel of torch lies on these machines' disk; an unpinned torch pulls a multi-GB CUDA build.
TORCH ?= torch==2.13.0
DEMO_OUT ?= runs/demo

.PHONY: demo test install install-dev bench lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -qq --upgrade pip

$(VENV)/.core: pyproject.toml | $(PY)
	$(PY) -m pip install -qq "$(TORCH)"
	$(PY) -m pip install -qq -e .
	touch $@

$(VENV)/.dev: pyproject.toml $(VENV)/.core
	$(PY) -m pip install -qq -e ".[dev,distributed]"
	touch $@

install: $(VENV)/.core
install-dev: $(VENV)/.dev

demo: install
	$(PY) -m byog_env.demo --out $(DEMO_OUT)

test: install-dev
	$(PY) -m pytest -q

bench: install-dev
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

lint: install-dev
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) runs .pytest_cache
