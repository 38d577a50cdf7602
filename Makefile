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
	# matminer (CrystalNN fingerprints of the a-Si/interface evaluation) and vasppy (the RDF
	# reference of the tests). --no-deps: matminer's metadata pins pandas<3 and pymongo, which
	# its fingerprints do not use; what it does import (scikit-learn) is installed first.
	$(PY) -m pip install -q --disable-pip-version-check scikit-learn==1.9.1
	$(PY) -m pip install -q --disable-pip-version-check --no-deps matminer==0.10.1 vasppy==1.0.0
	# chemeleon-dng (MIT): CSPNet and the diffusion schedules of the DiffCSP baseline. --no-deps:
	# its metadata asks for pytorch-lightning and fire (its trainer and CLI, unused here);
	# torch-geometric, which its CSPNet imports, is pinned in pyproject.toml.
	$(PY) -m pip install -q --disable-pip-version-check --no-deps chemeleon-dng==0.1.5
	rm -f $(VENV)/.installed-*
	touch $@

run: $(STAMP)
	$(VENV)/bin/dismai main

# Browser tests of the hub pages: Debian's chromium and npm's playwright-core (best effort:
# without them those tests skip and say why).
BROWSER := tests/hub/node_modules/playwright-core/package.json
$(BROWSER):
	command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || echo "chromium not installed: browser tests will skip"
	npm install --silent --no-audit --no-fund --no-save --no-package-lock --prefix tests/hub playwright-core@1.65.1 || echo "playwright-core not installed: browser tests will skip"

test: $(STAMP) $(BROWSER)
	$(VENV)/bin/ruff check .
	HF_HUB_OFFLINE=1 $(PY) -m pytest -m "not slow" -n 2 --dist loadfile -p no:cacheprovider --durations=15

test-slow: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -m slow -p no:cacheprovider
