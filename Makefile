# Quick start: `make demo` (install + run the main job), `make test` (install dev extras + run the tests).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU wheel of torch lies on these machines' disk; an unpinned torch pulls a multi-GB CUDA build.
TORCH ?= torch==2.13.0
DEMO_OUT ?= runs/demo

.PHONY: demo test test-fast install install-dev bench lint clean

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

# The whole pipeline on the embedded default (Crafter), small enough for a laptop CPU:
# collect -> train a tiny narrator -> narrate a live episode -> tiny transfer study.
DEMO_COLLECT ?= --env crafter --policy crafter-scripted --episodes 48 --max-episode-steps 400 --vector-mode sync
DEMO_TRAIN ?= --size tiny --preset byog --steps 900 --loader.window 8 --loader.batch_size 32 \
	--model.text.tokens_per_frame 8 --model.nil_threshold 0.5 --optim.lr 5e-3 \
	--schedule.warmup_steps 10 --loader.num_workers 1
# Imagination (a world model over grid-aligned tile codes, crafter's 7 px tiles, read from the
# frozen narrator): a short clip.
DEMO_IMAGINE ?= --world-model.tokens grid --world-model.full-mask-fraction 1.0 --train-steps 300 \
	--max-train-episodes 8 --steps 8 --clips 4 --samples 0 --video-clips 2

demo: install
	rm -rf $(DEMO_OUT)
	$(PY) collect/rollout.py $(DEMO_COLLECT) --out $(DEMO_OUT)/data
	$(PY) -m collect.inspect_dataset $(DEMO_OUT)/data --out $(DEMO_OUT)/inspect
	$(PY) -m agents.training --data $(DEMO_OUT)/data --out $(DEMO_OUT)/run $(DEMO_TRAIN)
	$(PY) -m agents.narrate --env crafter --checkpoint $(DEMO_OUT)/run --policy crafter-scripted \
		--steps 300 --greedy --sentence-share 0.8 --out $(DEMO_OUT)/narration
	$(PY) -m agents.imagine --checkpoint $(DEMO_OUT)/run --data $(DEMO_OUT)/data $(DEMO_IMAGINE) --out $(DEMO_OUT)/imagine
	$(PY) -m experiments.run_all --preset tiny --out $(DEMO_OUT)/study
	@echo "demo outputs: $(DEMO_OUT)/inspect/contact_sheet.png, $(DEMO_OUT)/run/summary.json, $(DEMO_OUT)/run/plots/, $(DEMO_OUT)/narration/narration.mp4, $(DEMO_OUT)/imagine/imagination.mp4, $(DEMO_OUT)/study/report.md"

test: install-dev
	$(PY) -m pytest -q

# the unmarked tests only (seconds each): the loop to run while editing; `make test` is the gate
test-fast: install-dev
	$(PY) -m pytest -q -m "not slow"

bench: install-dev
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

lint: install-dev
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) runs .pytest_cache
