# One command runner. `make demo` runs the enclave; `make test` sets up and runs every check.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PG_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/postgres

.PHONY: setup demo serve test test-sqlite test-postgresql check fix docs clean

# npm packages: the hub's proxy; the portal's GOV.UK Frontend, htmx and Sass; axe-core for its tests.
NPM_PACKAGES := configurable-http-proxy@5 govuk-frontend@6 htmx.org@2 sass@1 axe-core@4
PORTAL_ASSETS := $(VENV)/share/enclave/portal

setup: $(VENV)/.installed $(PORTAL_ASSETS)/portal.css

$(VENV)/.installed: pyproject.toml Makefile
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Enclave needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@command -v npm >/dev/null || { echo "npm is needed for the hub's proxy and the portal's assets (Debian: apt-get install npm)"; exit 1; }
	npm install --prefix $(VENV) --no-audit --no-fund --silent $(NPM_PACKAGES)
	@touch $@

# The portal's stylesheet compiled from enclave/portal/portal.scss, beside GOV.UK Frontend's and
# htmx's scripts and the portal's own; the app serves this folder under /portal/assets.
$(PORTAL_ASSETS)/portal.css: enclave/portal/portal.scss enclave/portal/static/enclave.mjs $(VENV)/.installed
	mkdir -p $(PORTAL_ASSETS)
	$(VENV)/node_modules/.bin/sass --load-path=$(VENV)/node_modules --style=compressed --no-source-map \
		--quiet-deps enclave/portal/portal.scss $(PORTAL_ASSETS)/portal.css.tmp
	cp $(VENV)/node_modules/govuk-frontend/dist/govuk/govuk-frontend.min.js $(PORTAL_ASSETS)/
	cp $(VENV)/node_modules/htmx.org/dist/htmx.min.js $(PORTAL_ASSETS)/
	cp enclave/portal/static/enclave.mjs $(PORTAL_ASSETS)/
	mv $(PORTAL_ASSETS)/portal.css.tmp $@

demo: setup
	$(VENV)/bin/enclave demo

serve: setup
	$(VENV)/bin/enclave serve

check: setup
	$(VENV)/bin/ruff check enclave tests bench
	$(VENV)/bin/ruff format --check enclave tests bench
	$(VENV)/bin/mypy

fix: setup
	$(VENV)/bin/ruff check --fix enclave tests bench
	$(VENV)/bin/ruff format enclave tests bench

docs: setup
	$(PY) -c 'from enclave.domain.access.states import diagrams_markdown as d; open("docs/access-states.md", "w").write(d())'
	$(PY) -c 'from enclave.domain.outputs.states import diagrams_markdown as d; open("docs/airlock-states.md", "w").write(d())'
	$(PY) -c 'import json; from enclave.domain.access.form import json_schema as s; open("access_requests/schema.json", "w").write(json.dumps(s(), indent=2) + "\n")'

test-sqlite: setup
	$(PY) -m pytest --db sqlite $(PYTEST_ARGS)

test-postgresql: setup
	ENCLAVE_DATABASE_URL=$(PG_URL) $(PY) -m pytest --db postgresql $(PYTEST_ARGS)

test: check test-sqlite test-postgresql

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
