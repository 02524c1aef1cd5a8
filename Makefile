# Two commands: `make book` (set up and build the website), `make test` (run the tests).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# CPU machines: torch==2.13.0 first, then every later pip call is constrained to it, so that
# nothing pulls a multi-GB CUDA build of another version.
PIP    := $(BIN)/python -m pip
PIP_INSTALL := $(PIP) install --quiet --constraint constraints.txt

.PHONY: book test env figures bench clean

book: env figures
	$(BIN)/jupyter-book build . --warningiserror --nitpick --keep-going

test: env
	$(BIN)/python -m pytest

env: $(VENV)/.installed

$(VENV)/.installed: requirements.txt constraints.txt pyproject.toml package.json package-lock.json
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP_INSTALL) torch==2.13.0
	$(PIP_INSTALL) -r requirements.txt -e .
	npm ci --silent --no-audit --no-fund
	touch $@

figures: env
	$(BIN)/python -m figures

bench: env
	$(BIN)/python -m book.bench

clean:
	rm -rf _build
