# One-command set-up: each target creates .venv on first use.
#   make run     set up, then bring the CPU tables up to date (default config)
#   make run FORCE=1   rebuild the CPU tables from scratch (every job reruns)
#   make test    set up, then run the test suite (CPU, offline)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
SMK    := $(VENV)/bin/snakemake
CORES  ?= 2
FORCE  ?=
SMK_FORCE := $(if $(FORCE),--forceall,)

.PHONY: install run test smoke lint paper-dryrun clean-smoke

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e ".[all]"
	touch $@

run: install
	$(SMK) --cores $(CORES) $(SMK_FORCE)

test: install
	$(PY) -m pytest -q

smoke: install
	$(SMK) --cores $(CORES) --configfile workflows/config/smoke.yaml

lint: install
	$(VENV)/bin/ruff check di4c tests benchmarks
	$(VENV)/bin/ruff format --check di4c tests benchmarks
	$(VENV)/bin/snakefmt --check Snakefile workflows/rules
	# snakemake --lint; its one finding, "specify a conda environment", is declined on
	# purpose (rules run the venv's interpreter), and the test accepts exactly that one
	$(PY) -m pytest -q tests/test_workflow.py -k snakemake_lint

clean-smoke:
	rm -rf results/smoke
