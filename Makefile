# Going serverless on AWS with Python & SAM. `make help` lists the targets.
# Every target sets itself up: the first run creates .venv with Python 3.13 and installs requirements.txt.

SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
# Offline by default: fake credentials, no telemetry; SAM CLI and boto3 never reach a real account from here.
export SAM_CLI_TELEMETRY := 0
# Put the venv first so that `sam build` finds python3.13 (the functions' runtime).
export PATH := $(abspath $(BIN)):$(PATH)
# A wheelhouse (`make wheelhouse`, or a folder from the presenter's USB stick) makes every pip offline: the
# first install, and the pip that `sam build` runs. workshop/wheelhouse.py says the same to the notebooks.
WHEELHOUSE ?= $(or $(WORKSHOP_WHEELHOUSE),wheelhouse)
export WORKSHOP_WHEELHOUSE := $(abspath $(WHEELHOUSE))
ifneq ($(wildcard $(WHEELHOUSE)/*.whl),)
export PIP_NO_INDEX := 1
export PIP_FIND_LINKS := $(abspath $(WHEELHOUSE))
endif
# Options for JupyterLab: make lab JUPYTER_ARGS="--port 8890 --no-browser"
JUPYTER_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help lab doctor test lint build unit notebooks notebooks-aws exercises reliability bench wheelhouse book slides clean

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.txt
	@base=$$(command -v python3.13 || command -v python3); \
	if ! "$$base" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null; then \
	  echo "This workshop needs Python 3.13 (the Lambda runtime's). Install it (pyenv install 3.13, or the conda route in README.md) and run make again."; exit 1; fi; \
	set -e -o pipefail; started=$$(date +%s); \
	echo "[1/3] $(VENV): a virtualenv with $$("$$base" --version)"; \
	test -x $(PY) || "$$base" -m venv $(VENV); \
	echo "[2/3] the pinned packages of requirements.txt and what they need$${PIP_NO_INDEX:+, from $(WHEELHOUSE)/ (no network)}:"; \
	PYTHONUNBUFFERED=1 $(PY) -m pip install --disable-pip-version-check --progress-bar off -r requirements.txt \
	  | awk '/^(Collecting|Processing) /{n++; name = $$2; sub(".*/", "", name); printf "  %3d  %s\n", n, name; fflush()} \
	         /^Installing collected packages/{printf "  installing them (the longest step)...\n"; fflush()} \
	         /^Successfully installed/{printf "  %d packages installed\n", NF-2}'; \
	echo "[3/3] the workshop and the app's source importable from notebooks, as from tests"; \
	printf '%s\n' "$(CURDIR)" "$(CURDIR)/sam-app/src" > "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/workshop.pth"; \
	echo "Set up in $$(( $$(date +%s) - started )) s. Next time this step is skipped."
	@touch $@

lab: $(VENV)/.installed ## JupyterLab at the repository's root, on notebooks/00_welcome (JUPYTER_ARGS="--port 8890")
	@# root_dir set: else Jupyter would root the file browser at the notebook's folder, out of reach of exercises/
	@if [ "$$(id -u)" = 0 ]; then echo "Running as root (a container or a cloud IDE): JupyterLab gets --allow-root."; fi; \
	exec $(PY) -m jupyter lab --ServerApp.root_dir="$(CURDIR)" $$([ "$$(id -u)" = 0 ] && echo --allow-root) \
	  $(JUPYTER_ARGS) notebooks/00_welcome.ipynb

doctor: $(VENV)/.installed ## is this laptop ready? Python, disk, memory, ports, the pins, a local cloud, sam build's wheels
	$(PY) -m workshop doctor

lint: $(VENV)/.installed ## lint the SAM template (any cfn-lint error or warning fails) and the import contracts
	$(BIN)/cfn-lint sam-app/template.yaml
	$(BIN)/lint-imports --no-cache
	@# validation reads no account, but SAM CLI wants a region: the learner's, or us-east-1 if there is none
	cd sam-app && ../$(BIN)/sam validate --lint --region "$${AWS_REGION:-$${AWS_DEFAULT_REGION:-$$(../$(BIN)/aws configure get region 2>/dev/null || echo us-east-1)}}"

build: $(VENV)/.installed ## sam build (python3.13, arm64)
	cd sam-app && ../$(BIN)/sam build

unit: $(VENV)/.installed ## the fast tests: the core and the handlers on moto
	$(PY) -m pytest tests/unit tests/integration -q

test: $(VENV)/.installed lint build ## everything CI checks: lint, sam build, every test, every notebook on both targets
	$(PY) -m pytest -q
	$(MAKE) notebooks
	$(MAKE) notebooks-aws

notebooks: $(VENV)/.installed ## run the notebooks and the solutions with nbval (outputs compared)
	$(PY) -m pytest -q --nbval notebooks solutions --nbval-sanitize-with .nbval-sanitize.cfg --nbval-cell-timeout 300 -p no:cacheprovider --junit-xml=.notebook-times.xml

notebooks-aws: $(VENV)/.installed ## the notebooks and solutions with WORKSHOP_TARGET=aws, a local cloud standing in for the account
	PY=$(PY) .ci/notebooks-aws

exercises: $(VENV)/.installed ## remake exercises/ from solutions/ (after editing a solution)
	$(PY) -m workshop.exercises

reliability: $(VENV)/.installed ## hostile inputs, injected faults, security, load: one summary, 0 lost
	RELIABILITY_LOAD=1 $(PY) -m pytest tests/reliability -q -p no:cacheprovider

bench: $(VENV)/.installed ## the benchmarks: ours side by side with the naive way and the floor
	$(PY) -m benchmarks.thumbnails
	$(PY) -m benchmarks.local_runtime
	$(PY) -m benchmarks.endpoint
	$(PY) -m benchmarks.load

wheelhouse: $(VENV)/.installed ## download every pinned wheel (4 laptop kinds) and sam build's into wheelhouse/, for offline rooms
	env -u PIP_NO_INDEX -u PIP_FIND_LINKS $(PY) -m workshop.wheelhouse --dest $(WHEELHOUSE)

book: $(VENV)/.installed ## the workshop as a static site, with stored outputs, in book/_build/html (open index.html)
	$(PY) -m workshop.book

slides: $(VENV)/.installed ## a reveal.js deck per notebook and a presenter outline, in slides/ (works offline)
	$(PY) -m workshop.slides

clean: ## remove build output and caches (keeps .venv and wheelhouse/)
	rm -rf sam-app/.aws-sam .pytest_cache .workshop book/_build slides
