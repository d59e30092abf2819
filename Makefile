# Every target creates the virtualenv it needs, so each works on a fresh clone.
# `make help` lists them.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYENV_ROOT ?= /root/.pyenv

.PHONY: help demo install install-dev test test-rust test-python test-versions test-py314 venv

help: ## Show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(VENV)/.ready: pyproject.toml tests/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "maturin>=1.7,<2" -r tests/requirements.txt
	touch $@

venv: $(VENV)/.ready ## Create the development virtualenv

install: $(VENV)/.ready ## Build the optimised extension into the virtualenv
	$(VENV)/bin/maturin develop --release -q

install-dev: $(VENV)/.ready ## Build the extension quickly (no LTO) for the tests
	$(VENV)/bin/maturin develop -q

demo: install ## Install and run the leak hunt on the bundled demo app
	@# Exit status 1 means "leak found": what the demo is meant to show, not a failure.
	$(VENV)/bin/heapsight demo --report demo-report.html; status=$$?; \
	  if [ $$status -le 1 ]; then echo "HTML report: demo-report.html"; fi; [ $$status -le 1 ]

test-rust: ## Rust tests, clippy and formatting
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo test --workspace -q
	# The extension for a free-threaded 3.14t (no such interpreter here to run it on):
	# it must build, and it refuses to read the heap there (capture/gc_lists.rs).
	PYO3_CONFIG_FILE=$(CURDIR)/scripts/pyo3-3.14t.cfg CARGO_TARGET_DIR=target/free-threaded \
		cargo clippy -p heapsight_py --all-targets -- -D warnings

test-python: install-dev ## Python tests on the default interpreter
	bash scripts/ensure-chromium.sh
	$(VENV)/bin/ruff check python tests bench
	$(VENV)/bin/python -m pytest -q tests bench/test_bench.py

test-versions: ## Capture tests on every other CPython found under $(PYENV_ROOT)
	bash scripts/test-versions.sh

test-py314: ## Capture and attach tests on CPython 3.14 (Debian sid root made by debootstrap)
	bash scripts/test-py314.sh

test: test-rust test-python test-versions test-py314 ## Install and run every test
