# tfpcourse: set up, fetch data, run, test.  `make` then `make test` is all a newcomer needs.
#
#   make            create .venv, install the course, download the datasets, run every chapter
#                   (smoke profile by default: a quick proof that everything works here), and
#                   build the course website from the stored outputs (book/_build/html)
#   make test       lint + unit tests + nbval over the notebooks (smoke profile by default)
#   make execute    re-execute the notebooks in place in the full profile (for committing)
#   make lab        open the notebooks in JupyterLab
#   make book       build only the website (warnings are errors); prints where it is
#
# Variables: PYTHON (interpreter used to create the venv), VENV, TFPCOURSE_PROFILE,
# TFPCOURSE_DATA_DIR, TFPCOURSE_DATA_MIRROR (see README).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
RUN_PROFILE ?= smoke

.PHONY: all setup data run book test lint execute lab clean

all: setup data run book

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,book]"
	touch $@

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

execute: setup
	$(BIN)/jupytext --sync notebooks/[0-9][0-9]_*.py
	$(BIN)/tfpcourse run --profile full --inplace --json build/run-report-full.json

lab: setup
	$(BIN)/jupyter lab notebooks/

clean:
	rm -rf build book/_build .pytest_cache .ruff_cache
