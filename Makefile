# lbgap: the commands users and CI rely on. `make help` lists them.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)
CORES ?= all
SCALE ?= quick

.PHONY: help setup lock test-install readme-figures data-packages reproduce test report bench rehearse test-slurm slurm-profile lint clean

help:
	@echo "make reproduce      set up, then run the whole pipeline at the quick scale (offline) and its report"
	@echo "make test           set up, then run the test suite"
	@echo "make setup          create .venv and install lbgap with pinned dependencies"
	@echo "make lock           rewrite requirements.lock from pyproject.toml (needs PyPI)"
	@echo "make test-install   install lbgap with Python 3.12 and 3.13 too (minutes)"
	@echo "make readme-figures run the pipeline, then redraw the README's pictures in docs/img"
	@echo "make report         build reports/report.html from the finished results"
	@echo "make bench          run the CPU benchmarks (benchmarks/README.md)"
	@echo "make rehearse       run the whole paper-scale matrix on stand-in data (minutes; rehearsal/)"
	@echo "make test-slurm     run the workflow on a throw-away local SLURM cluster"
	@echo "make slurm-profile  install profiles/slurm as your 'slurm' Snakemake profile"

setup: $(VENV)/.installed data-packages

# Debian's Fashion-MNIST for the default scale (as root; otherwise a note says what to install).
data-packages:
	@scripts/install_data_packages.sh

$(VENV)/.installed: pyproject.toml requirements.lock scripts/setup_venv.sh
	VENV=$(VENV) scripts/setup_venv.sh

# The run, then its Snakemake report (reports/report.html) in the same command; the run ends
# with a summary: claims by verdict, headline numbers, compute, where to look.
REPORT_AFTER_RUN := --report reports/report.html --report-after-run

# Every package of the tree pinned, for Linux, macOS and Windows and Python 3.11 to 3.13 at once.
lock: setup
	python -m pip install --quiet uv==0.13.9
	uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 \
	  --annotation-style line --custom-compile-command "make lock" -o requirements.lock -q

# A real install with each other supported Python found here (PATH or pyenv); fails without one.
test-install: setup
	LBGAP_REQUIRE_PYTHONS=1 pytest -q -p no:cacheprovider -m install tests/test_envs.py

readme-figures: reproduce
	scripts/readme_figures.sh

reproduce: setup
	snakemake --cores $(CORES) reproduce_all --config scale=$(SCALE) $(REPORT_AFTER_RUN)

# pytest exits 5 when it collects no test; that is not a failure of the suite.
test: setup
	pytest -q; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

report: setup
	snakemake --cores $(CORES) reproduce_all --config scale=$(SCALE) $(REPORT_AFTER_RUN)

# The paper-scale matrix on stand-in data, sizes shrunk (config.yaml: scales.rehearsal), in
# rehearsal/; then a check that every table, figure and claim of scale=paper was computed.
# Its Snakemake report is rehearsal/reports/report.html (paths are the rehearsal's own).
rehearse: setup
	snakemake --cores $(CORES) reproduce_all --config scale=rehearsal $(REPORT_AFTER_RUN)
	pytest -q -p no:cacheprovider -m rehearsal tests/test_rehearsal_outputs.py

bench: setup
	@for b in benchmarks/bench_*.py; do [ -e "$$b" ] || continue; echo "== $$b"; python "$$b" || exit 1; done

# A throw-away SLURM cluster on this machine (root; Debian's munge slurmctld slurmd
# slurm-client): failing, not skipping, when it cannot start.
test-slurm: setup
	LBGAP_REQUIRE_SLURM=1 pytest -q -m slurm tests/test_slurm.py

slurm-profile:
	@scripts/install_slurm_profile.sh

lint: setup
	ruff check . && ruff format --check .
	snakefmt --check Snakefile workflow/rules
	snakemake --lint

clean:
	rm -rf results logs .snakemake reports/report.html reports/index.html rehearsal
	find reports/tables reports/figures -type f ! -name .gitkeep -delete
