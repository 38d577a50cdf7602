# The two quick-start commands (see README.md):
#   make run    set up .venv, build the datasets and publish/serve them (the main job)
#   make test   set up .venv and run the test suite (what CI runs)
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)

.PHONY: run test test-slow setup

setup: $(STAMP)

# torch first, from the local CPU wheel: any other order pulls gigabytes of CUDA.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install -q --disable-pip-version-check -e ".[dev]"
	rm -f $(VENV)/.installed-*
	touch $@

run: $(STAMP)
	$(VENV)/bin/dismai main

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -m "not slow" -n 2 --dist loadfile -p no:cacheprovider

test-slow: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -m slow -p no:cacheprovider
