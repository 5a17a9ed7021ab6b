# Every target creates or reuses .venv by itself: on a fresh machine `make demo` and `make test` are
# the only set-up commands.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# checkov pins boto3==1.35.49 (and packaging<24, networkx<2.7), which the project's boto3>=1.40 excludes, so it
# cannot be a dev extra: it gets a venv of its own. Bump the pin here (`pip index versions checkov`).
CHECKOV := checkov==3.3.30
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(CHECKOV)

.PHONY: demo test local bench lint layer fmt clean

# On a terminal pip shows what it installs with its progress bars; in a log (`make demo > demo.log 2>&1`) it is quiet
# and the step is announced instead. A shell statement: `test -t 1` must run in the recipe's shell, whose stdout is
# make's (inside a $$(...) substitution stdout is the substitution's pipe).
PIP_OUTPUT = if test -t 1; then pip_output=--progress-bar=on; else pip_output='--quiet --progress-bar=off'; fi

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing sklambda and its dev tools into $(VENV) (first run, or pyproject.toml changed: about 2 minutes)"
	@$(PIP_OUTPUT); \
	  $(PY) -m pip install $$pip_output --disable-pip-version-check --upgrade pip && \
	  $(PY) -m pip install $$pip_output --disable-pip-version-check -e '.[dev]'
	@echo "building the dependency layer's host copy, where publish and the local stack run models (once, ~15 s)"
	@$(PY) -c 'from sklambda_infra.runtime import ensure_runtime_path; ensure_runtime_path()'
	@touch $(STAMP)
	@echo "installed into $(VENV)"

$(CHECKOV_STAMP):
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet '$(CHECKOV)'
	@rm -f $(CHECKOV_VENV)/.installed-*
	@touch '$(CHECKOV_STAMP)'

demo: $(STAMP)
	$(PY) -m sklambda_infra.demo

# The two extra runtime copies the suite publishes to (tests/runtimes.py: the layer plus LightGBM, the other supported
# scikit-learn): built once as set-up, like the dev tools, so a first `make test` on a machine measures its tests.
TEST_RUNTIMES_STAMP := $(VENV)/.test-runtimes
$(TEST_RUNTIMES_STAMP): $(STAMP) tests/runtimes.py
	@echo "building the two extra runtime copies the test suite publishes to (once, ~20 s)"
	@$(PY) -m tests.runtimes
	@touch $(TEST_RUNTIMES_STAMP)

test: $(STAMP) $(TEST_RUNTIMES_STAMP)
	$(PY) -m pytest

# `make local SAMPLE=0`: start without publishing the sample model (penguins) to production.
local: $(STAMP)
	$(PY) -m sklambda_infra.cli local up $(if $(filter 0,$(SAMPLE)),--no-sample)

bench: $(STAMP)
	$(PY) -m sklambda_infra.bench

layer: $(STAMP)
	$(PY) -m sklambda_infra.layer

# checkov: every failed check is fixed in template.yaml or skipped there with a reason (Metadata: checkov: skip:).
lint: $(STAMP) $(CHECKOV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/cfn-lint template.yaml
	$(CHECKOV_VENV)/bin/checkov --file template.yaml --framework cloudformation --skip-download --compact --quiet

fmt: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) build .sklambda .pytest_cache .ruff_cache
