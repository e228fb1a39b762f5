# The two commands on a fresh machine: `make demo` and `make test`.
#
# Installs are locked: uv.lock pins every package the venv gets (`make lock`
# refreshes it), and lowest.txt pins the oldest releases that pyproject.toml
# declares (its floors), which `make test-lowest` proves. uv itself is pinned
# and installed from PyPI with pip into .tools/, so nothing but Python 3.11+
# and make is needed to start.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
UV_VERSION := 0.13.10
TOOLS := .tools
UV := $(TOOLS)/bin/uv
# The extras the tests need (all but fast, uvloop, which the suite runs without).
TEST_EXTRAS := --extra test --extra redis --extra metrics --extra cli --extra fix
# Never fetch an interpreter: use the one on this machine.
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(PYTHON)
export UV_NO_PROGRESS := 1
# The test suite, as `make test` and CI run it. With redis-server installed,
# the Redis tests run against a throwaway server; without it they are skipped
# with a reason (never in CI: .ci/run installs it and sets CI, which turns the
# skip into a failure).
RUN_SUITE = if command -v redis-server >/dev/null 2>&1; then scripts/with-redis $(1) -m pytest $(PYTEST_ARGS); \
	else $(1) -m pytest $(PYTEST_ARGS); fi

.PHONY: venv demo hello test test-lowest test-latest test-loop lock bench lint dist wheel-smoke clean

$(UV):
	test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check 'uv==$(UV_VERSION)'

$(STAMP): $(UV) pyproject.toml uv.lock
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --locked --quiet --all-extras
	touch $(STAMP)

venv: $(STAMP)

demo: venv
	$(PY) -m examples.order_routing run --duration 30

hello: venv
	$(PY) -m examples.hello_node

test: venv
	@$(call RUN_SUITE,$(PY))

# The suite on the oldest releases pyproject.toml allows (lowest.txt), in its own venv.
test-lowest: $(UV)
	test -x .venv-lowest/bin/python || $(UV) venv --quiet .venv-lowest
	$(UV) pip sync --quiet --python .venv-lowest/bin/python lowest.txt
	$(UV) pip install --quiet --python .venv-lowest/bin/python --no-deps -e .
	@$(call RUN_SUITE,.venv-lowest/bin/python)

# The suite on the newest release of everything (not locked; not in CI, since an
# upstream release must not block a landing): run it before a release.
test-latest: $(UV)
	test -x .venv-latest/bin/python || $(UV) venv --quiet .venv-latest
	$(UV) pip install --quiet --python .venv-latest/bin/python --upgrade --reinstall-package garrison \
		-e '.[test,redis,metrics,cli]'
	@$(call RUN_SUITE,.venv-latest/bin/python)

# Runs the suite N times, stopping at the first failure; every run's output is kept.
N ?= 20
test-loop: venv
	scripts/test-loop $(N)

# Refresh both locks: the newest releases within pyproject.toml's ranges (uv.lock),
# and the oldest ones (lowest.txt).
lock: $(UV)
	$(UV) lock --upgrade
	$(UV) pip compile --quiet --resolution lowest-direct --universal $(TEST_EXTRAS) \
		--no-emit-package garrison pyproject.toml -o lowest.txt

bench: venv
	$(PY) -m bench

# ruff (SLF001 included: no reach into another object's privates in garrison/ or
# examples/), mypy --strict, and the import contracts in pyproject.toml (layers
# import one way; the example's product never imports its harness).
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy --strict garrison
	$(VENV)/bin/lint-imports

# The sdist and the wheel, built in isolation (the pinned setuptools) into dist/, then checked:
# metadata and README render (twine), no stray or missing modules in the wheel (check-wheel-contents).
dist: venv
	rm -rf dist
	$(UV) build --quiet --out-dir dist
	$(VENV)/bin/twine check --strict dist/*
	$(VENV)/bin/check-wheel-contents dist/*.whl

# That wheel in a clean venv, outside the tree: `garrison --version` and `python -m garrison` run.
wheel-smoke: dist
	UV=$(UV) scripts/wheel-smoke

clean:
	rm -rf $(VENV) .venv-lowest .venv-latest $(TOOLS) .mypy_cache .ruff_cache .pytest_cache .hypothesis dist build
