# The README's two commands: `make serve` and `make test`. Both set up .venv on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch first, as its CPU build, so that the project's range is already met and pip pulls no other:
# PyPI's torch for Linux is the CUDA build (with its NVIDIA libraries, a virtualenv of about 6 GB).
# A torch wheel that pip finds without any index (in its find-links: the project's own machines keep
# one there, and cannot reach PyTorch's index) is taken as it is; otherwise PyTorch's CPU-only index
# supplies it. `make setup TORCH_INDEX=https://pypi.org/simple` takes PyPI's CUDA build instead.
TORCH := torch==2.13.0
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu

.PHONY: setup serve test lint typecheck system-packages

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --no-index --no-deps $(TORCH) 2>/dev/null || \
		$(BIN)/pip install --quiet $(TORCH) --index-url $(TORCH_INDEX)
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

# ruff (lint and import order, as pyproject.toml selects) over everything: CI runs it before the tests.
lint: setup
	$(BIN)/ruff check .

# mypy over the package. It finds modules by folder, so it reads the package through
# build/typecheck/latentcast, links laid out as the wheel installs it (pyproject.toml's package-dir).
TYPECHECK := build/typecheck/latentcast
typecheck: setup
	rm -rf $(TYPECHECK) && mkdir -p $(TYPECHECK)
	ln -s $(CURDIR)/latentcast/*.py $(CURDIR)/latentcast/py.typed $(TYPECHECK)/
	ln -s $(CURDIR)/server $(TYPECHECK)/server
	ln -s $(CURDIR)/client $(TYPECHECK)/client
	cd build/typecheck && $(CURDIR)/$(BIN)/mypy --config-file $(CURDIR)/pyproject.toml -p latentcast
