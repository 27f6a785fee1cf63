# One-command set-up: each target creates .venv on first use.
#   make run     set up, then regenerate the CPU tables (default config)
#   make test    set up, then run the test suite (CPU, offline)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
SMK    := $(VENV)/bin/snakemake
CORES  ?= 2

.PHONY: install run test smoke lint paper-dryrun clean-smoke

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e ".[all]"
	touch $@

run: install
	$(SMK) --cores $(CORES)

test: install
	$(PY) -m pytest -q

smoke: install
	$(SMK) --cores $(CORES) --configfile workflows/config/smoke.yaml

lint: install
	$(VENV)/bin/ruff check di4c tests benchmarks
	$(VENV)/bin/ruff format --check di4c tests benchmarks
	$(VENV)/bin/snakefmt --check Snakefile workflows/rules
	$(SMK) --lint

clean-smoke:
	rm -rf results/smoke
