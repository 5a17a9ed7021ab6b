# Every target creates or reuses .venv by itself: on a fresh machine `make demo` and `make test` are
# the only set-up commands.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test local bench lint layer fmt clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) -m sklambda_infra.demo

test: $(STAMP)
	$(PY) -m pytest

local: $(STAMP)
	$(PY) -m sklambda_infra.cli local up

bench: $(STAMP)
	$(PY) -m sklambda_infra.bench

layer: $(STAMP)
	$(PY) -m sklambda_infra.layer

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/cfn-lint template.yaml

fmt: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) build .sklambda .pytest_cache .ruff_cache
