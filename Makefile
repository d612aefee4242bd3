# The two commands the README names: `make search` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BUDGET ?= 300

.PHONY: setup search lint test clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@# bubblewrap gives the sandbox its strongest isolation; without it evoforge falls back (see README).
	@command -v bwrap >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap; \
		else echo "note: bubblewrap (bwrap) not found; the sandbox falls back to unshare or rlimits-only"; fi; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

# A real search on the embedded defaults: SQLite in runs/, local sandbox workers, the offline proposer
# (or the model named by EVOFORGE_MODEL when you have a key). FunSearch's OR3 instances, where best fit (the seed)
# has room to improve within a few hundred offline candidates; on the generated Weibull set it rarely does.
search: setup
	$(BIN)/evoforge run problems/bin_packing.py --set dataset=or3 --budget $(BUDGET) --workers 2 \
		$(if $(EVOFORGE_MODEL),--model $(EVOFORGE_MODEL),)

# The linter and the type checker, configured in pyproject.toml; `make test` runs them first.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy -p evoforge

test: setup lint
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
