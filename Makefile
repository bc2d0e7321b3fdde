# tfpcourse: set up, fetch data, run, test.  `make` then `make test` is all a newcomer needs.
#
#   make            create .venv, install the course, download the datasets, run every chapter
#                   (smoke profile by default: a quick proof that everything works here), and
#                   build the course website from the stored outputs (book/_build/html)
#   make test       lint + unit tests + nbval over the notebooks (smoke profile by default)
#   make execute    re-execute the notebooks in place in the full profile (for committing)
#   make lab        open the notebooks in JupyterLab
#   make book       build only the website (warnings are errors); prints where it is
#   make lock       re-resolve requirements/lock.txt (the exact stack of the stored outputs)
#   make matrix     unit tests + nbval smoke run on every Python 3.10-3.13 found (slow, noxfile.py)
#   make stacks     every chapter on the oldest, locked and canary TF stacks + upgrade report (slow)
#
# Variables: PYTHON (interpreter used to create the venv), VENV, TFPCOURSE_PROFILE,
# TFPCOURSE_DATA_DIR, TFPCOURSE_DATA_MIRROR (see README).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
RUN_PROFILE ?= smoke

.PHONY: all setup data run book test lint execute lab clean lock matrix stacks regress-smoke

all: setup data run book

# The locked stack (requirements/lock.txt, with hashes) is what produced the stored notebook
# outputs; it resolves on Python 3.11.7-3.13. On another Python (3.10) the course installs from
# the ranges in pyproject.toml instead, and says so.
$(BIN)/.installed: pyproject.toml requirements/lock.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@if $(BIN)/python -c 'import sys; sys.exit(not (3, 11, 7) <= sys.version_info[:3] < (3, 14))'; then \
	  echo "Installing the locked stack (requirements/lock.txt)"; \
	  $(BIN)/python -m pip install --quiet --require-hashes -r requirements/lock.txt; \
	  $(BIN)/python -m pip install --quiet --no-deps -e .; \
	else \
	  echo "$$($(BIN)/python -V) is outside the lock (3.11.7-3.13): installing from the ranges in pyproject.toml"; \
	  $(BIN)/python -m pip install --quiet -e ".[dev,book]"; \
	fi
	touch $@

# Re-resolve requirements/lock.txt after a change to pyproject.toml's dependencies (existing
# pins are kept where they still fit; `make lock UPGRADE=--upgrade` takes the newest releases).
lock: setup
	$(BIN)/uv pip compile pyproject.toml --extra dev --extra book --universal \
	  --python-version 3.11.7 --generate-hashes --custom-compile-command "make lock" \
	  $(UPGRADE) -o requirements/lock.txt

setup: $(BIN)/.installed

data: setup
	$(BIN)/tfpcourse data download mnist fashion_mnist
	@$(BIN)/tfpcourse data download kmnist || echo "(Kuzushiji-MNIST is optional; see the message above.)"

run: setup
	$(BIN)/tfpcourse run --profile $(RUN_PROFILE) --output-dir build/executed --json build/run-report.json

book: setup
	$(BIN)/tfpcourse book

test: setup
	$(BIN)/ruff check .
	TFPCOURSE_PROFILE=$${TFPCOURSE_PROFILE:-smoke} $(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check .

# The stored outputs (full profile), then the smoke baseline that CI compares its own smoke run
# with (tests/baselines/smoke: printed text only, see tfpcourse regress).
execute: setup
	$(BIN)/jupytext --sync notebooks/[0-9][0-9]_*.py
	$(BIN)/tfpcourse run --profile full --inplace --json build/run-report-full.json
	$(BIN)/tfpcourse run --profile smoke --output-dir tests/baselines/smoke --strip-images

# CI's smoke run (make run) against the smoke baseline, cell by cell within each cell's tolerance.
regress-smoke: setup
	$(BIN)/tfpcourse regress tests/baselines/smoke build/executed --markdown build/regress-smoke.md \
	  --json build/regress-smoke.json || (cat build/regress-smoke.md; exit 1)

matrix: setup
	$(BIN)/nox -s tests table

stacks: setup
	$(BIN)/nox -s stack table

lab: setup
	$(BIN)/jupyter lab notebooks/

clean:
	rm -rf build book/_build .pytest_cache .ruff_cache
