# Two commands are all a newcomer types: `make demo` and `make test`. Both set up first when needed.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
PYTRITON_VERSION := 0.7.0
TRITON_DIR := .triton
TRITONSERVER := $(TRITON_DIR)/pytriton/tritonserver/bin/tritonserver
# pip lists every local index it skips; keep set-up output readable.
QUIET_PIP := 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)

.PHONY: help setup browser protos lint test demo bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-7s %s\n", $$1, $$2}'

setup: $(INSTALLED) $(TRITONSERVER) browser ## create .venv with the project, dev tools and tritonserver

# Debian's chromium and chromedriver, which the review app's browser tests drive (as CI does):
# installed with apt where there is apt and we are root or have sudo; skipped with a message
# otherwise (those tests then skip, saying why).
CHROMIUM_PACKAGES := chromium chromium-driver
browser: ## install chromium + chromedriver for the review app's browser tests (apt)
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then \
		echo "chromium and chromedriver: already installed"; \
	elif ! command -v apt-get >/dev/null; then \
		echo "chromium: no apt-get here, skipped (the review app's browser tests will skip)"; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get install -y $(CHROMIUM_PACKAGES) || { apt-get update && apt-get install -y $(CHROMIUM_PACKAGES); }; \
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then \
		sudo apt-get install -y $(CHROMIUM_PACKAGES) || { sudo apt-get update && sudo apt-get install -y $(CHROMIUM_PACKAGES); }; \
	else \
		echo "chromium: not root and no sudo, skipped (the review app's browser tests will skip)"; \
	fi

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip $(QUIET_PIP)
	$(PY) -m pip install --quiet -e '.[dev]' $(QUIET_PIP)
	touch $@

# The tritonserver binary (with the Python backend) comes from the nvidia-pytriton wheel,
# unpacked without installing the wheel or its dependencies (their pins would spread).
$(TRITONSERVER): scripts/install_tritonserver.py | $(INSTALLED)
	$(PY) scripts/install_tritonserver.py --version $(PYTRITON_VERSION) --dest $(TRITON_DIR) $(QUIET_PIP)
	touch $@

protos: $(INSTALLED) ## regenerate src/agentic_labeling/v1 from protos/
	$(PY) scripts/gen_protos.py

lint: $(INSTALLED) ## ruff, mypy, buf lint, buf breaking, generated-code drift
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/buf lint
	@# Compares with the main branch; a fresh clone without one has nothing to compare.
	@if git rev-parse --verify --quiet main >/dev/null; then \
		echo "$(BIN)/buf breaking --against '.git#branch=main'"; \
		$(BIN)/buf breaking --against '.git#branch=main'; \
	else echo "buf breaking: no main branch to compare with, skipped"; fi
	$(PY) scripts/gen_protos.py --check

test: setup lint ## lint, then the whole test suite with coverage (>= 80%)
	@# --durations: the slowest tests, where to cut when the suite outgrows its 20 minutes.
	$(BIN)/pytest --cov --cov-report=term --durations=20

demo: setup ## start the mesh on loopback, call it, stop it
	$(PY) scripts/demo.py

# Every CPU table of BENCHMARKS.md at the size it reports (about 25 minutes on 2 cores); the
# GPU table and 1M vectors have their own commands there. JSON and plots go to bench-results/.
BENCH_OUT := bench-results
bench: setup ## rerun the CPU benchmarks of BENCHMARKS.md into bench-results/
	mkdir -p $(BENCH_OUT)
	$(PY) -m bench.registry_ingest --objects 10000 --batch 100 --writers 1,16 --repeat 9 --out $(BENCH_OUT)/registry_ingest.json
	$(PY) -m bench.dataset_export --objects 100000 --out $(BENCH_OUT)/dataset_export.json
	$(PY) -m bench.vector_search --vectors 100000 --dim 768 --out $(BENCH_OUT)/vector_search_100k.json --plot $(BENCH_OUT)/vector_search_100k.png
	$(BIN)/alabel models make-tiny $(BENCH_OUT)/tiny-models
	$(PY) -m bench.models_gpu --models-dir $(BENCH_OUT)/tiny-models --device cpu --images 200 --concurrency 1,4,16 --max-queue-delay-us 0,20000 --max-detections 4 --out $(BENCH_OUT)/mesh_cpu.json
	$(PY) -m bench.autolabel_mesh --models-dir $(BENCH_OUT)/tiny-models --images 200 --concurrency 1,4,16 --max-detections 4 --out $(BENCH_OUT)/autolabel_mesh.json

clean: ## remove the venv, tritonserver and caches (the data directory is kept)
	rm -rf $(VENV) $(TRITON_DIR) .cache .build build dist .pytest_cache .mypy_cache .ruff_cache .coverage $(BENCH_OUT)
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
