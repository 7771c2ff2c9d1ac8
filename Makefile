# Two commands a newcomer needs: `make quickstart` (the main job) and `make test` (the suite).
# Both create .venv on first use. TORCH_SPEC installs the CPU torch before anything else, so no
# CUDA packages are pulled; override it on machines whose index has another CPU build.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= all
export NO_ALBUMENTATIONS_UPDATE := 1
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install install-ray quickstart smoke test test-all lint bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	touch $@

# the test suite also runs the Ray executor on a local Ray instance
$(VENV)/.installed-ray: $(VENV)/.installed
	$(PY) -m pip install -q -e ".[$(EXTRAS),ray]"
	touch $@

install: $(VENV)/.installed
install-ray: $(VENV)/.installed-ray

quickstart: install
	SYNTH_PROGRESS=1 $(VENV)/bin/synth run pipelines/quickstart.yaml --out runs/quickstart

smoke: install
	$(VENV)/bin/synth run pipelines/smoke.yaml --out runs/smoke

test: install-ray
	$(PY) -m pytest -q -m "not slow and not gpu and not network"

test-all: install-ray
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check synth tests scripts benchmarks
	$(VENV)/bin/ruff format --check synth tests scripts benchmarks

bench: install
	$(PY) benchmarks/bench_dedup.py

clean:
	rm -rf runs .pytest_cache
