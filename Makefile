# The README's two commands: `make serve` and `make test`. Both set up .venv on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch first, pinned to the CPU build on this machine's disk, so the project's range is already met
TORCH := torch==2.13.0

.PHONY: setup serve test system-packages

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

setup: $(VENV)/.installed

serve: setup
	$(BIN)/latentcast serve

# Debian packages the tests drive for real: redis-server (scale-out) and chromium (pages).
system-packages:
	@if ! command -v redis-server >/dev/null || ! command -v chromium >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server chromium >/dev/null; \
	fi

test: setup system-packages
	$(BIN)/python -m pytest -q -n 2 --dist loadfile
