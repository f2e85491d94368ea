# Two entry points for a newcomer: `make demo` (train two bundled examples and inspect their runs)
# and `make test` (everything CI runs). Both build .venv on first use; re-runs reuse it until
# pyproject.toml or constraints.txt change.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --disable-pip-version-check --quiet
STAMP_BASE := $(VENV)/.installed-base
STAMP_DEV := $(VENV)/.installed-dev
STAMP_DEMO := $(VENV)/.installed-demo
LINT_PATHS := $(wildcard src tests bench scripts)
NPM_STAMP := node_modules/.installed

.PHONY: demo lint-demo test lint bench docs clean deps-system

# Trains examples/digits_cnn_lr_too_high.py and its healthy twin into build/demo/, then runs
# `nnprobe inspect` and `nnprobe report` over the scripts, checkpoints and logs (scripts/demo.py).
demo: $(STAMP_DEMO)
	$(BIN)/python scripts/demo.py

# The static half alone, for a machine without torch: lint every script in examples/.
lint-demo: $(STAMP_BASE)
	$(BIN)/nnprobe inspect --fail-on never examples/

test: $(STAMP_DEV) $(NPM_STAMP) deps-system
	@status=0; \
	echo "+ ruff check $(LINT_PATHS)"; $(BIN)/ruff check $(LINT_PATHS) || status=1; \
	if [ -f scripts/gen_docs.py ]; then \
		echo "+ python scripts/gen_docs.py --check"; \
		$(BIN)/python scripts/gen_docs.py --check || status=1; \
	fi; \
	echo "+ python -m pytest -q"; $(BIN)/python -m pytest -q || status=1; \
	echo "+ npm run test:unit (client-vscode)"; npm run --silent test:unit --workspace client-vscode || status=1; \
	echo "+ npm run test:e2e (client-vscode: code-server + headless Chromium)"; \
	npm run --silent test:e2e --workspace client-vscode || status=1; \
	exit $$status

# The VS Code extension's npm packages (root package.json is the workspaces root); its end-to-end
# test installs code-server and Chromium itself (client-vscode/scripts/setup-e2e.sh, cached).
$(NPM_STAMP): package.json package-lock.json client-vscode/package.json
	@command -v npm >/dev/null || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null; \
		else \
			echo "npm is needed for the VS Code extension's tests: install Node.js >= 20" >&2; exit 1; \
		fi; }
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# Neovim is the third-party LSP client the language-server tests drive; installed when running as
# root with apt (CI), else its test skips and says why.
deps-system:
	@command -v nvim >/dev/null || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -qq && apt-get install -y -qq neovim >/dev/null; \
		else \
			echo "note: neovim not installed; the Neovim LSP test will be skipped" >&2; \
		fi; }
	@command -v strace >/dev/null || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -qq && apt-get install -y -qq strace >/dev/null; \
		else \
			echo "note: strace not installed; the native-writes audit will be skipped" >&2; \
		fi; }

lint: $(STAMP_DEV)
	$(BIN)/ruff check $(LINT_PATHS)

bench: $(STAMP_BASE)
	$(BIN)/python bench/static_bench.py

docs: $(STAMP_BASE)
	$(BIN)/python scripts/gen_docs.py

clean:
	rm -rf $(VENV)

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
		echo "nnprobe needs Python >= 3.11; run: make PYTHON=python3.11 ..." >&2; exit 1; }
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -qq && apt-get install -y -qq python3-venv; \
		else \
			echo "$(PYTHON) cannot create a virtualenv; on Debian/Ubuntu: sudo apt-get install python3-venv" >&2; \
			exit 1; \
		fi; }
	$(PYTHON) -m venv $(VENV)

# The base install is all the static path needs (no torch); the dev install pins torch through
# constraints.txt because an unpinned torch resolves to a multi-GB CUDA build.
$(STAMP_BASE): pyproject.toml | $(BIN)/python
	$(PIP) -e .
	@touch $@

# What the demo's probes and pictures need: the probe extra (torch pinned as above) with matplotlib
# and scikit-learn from the viz extra, but not its umap-learn (numba and llvmlite, ~210 MB, unused
# by the report's PCA preview) nor the test tools. A dev install holds all of this already.
$(STAMP_DEMO): pyproject.toml constraints.txt | $(BIN)/python
	@if [ -f $(STAMP_DEV) ] && [ $(STAMP_DEV) -nt pyproject.toml ] && [ $(STAMP_DEV) -nt constraints.txt ]; then \
		:; \
	else \
		echo "$(PIP) -e '.[probe]' matplotlib scikit-learn -c constraints.txt"; \
		$(PIP) -e '.[probe]' matplotlib scikit-learn -c constraints.txt; \
	fi
	@touch $@ $(STAMP_BASE)

$(STAMP_DEV): pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) -e '.[dev]' -c constraints.txt
	@touch $@ $(STAMP_BASE)
