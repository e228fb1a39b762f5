# The two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: venv demo hello test bench lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,dev,redis,metrics]'
	touch $(STAMP)

venv: $(STAMP)

demo: venv
	$(PY) -m examples.order_routing run --duration 30

hello: venv
	$(PY) -m examples.hello_node

# With redis-server installed, the Redis tests run against a throwaway server;
# without it they are skipped with a reason (never in CI: .ci/run installs it).
test: venv
	@if command -v redis-server >/dev/null 2>&1; then scripts/with-redis $(PY) -m pytest; \
	else $(PY) -m pytest; fi

bench: venv
	$(PY) -m bench

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy --strict garrison

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
