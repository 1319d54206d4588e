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

.DEFAULT_GOAL := help
.PHONY: help lab test lint build unit notebooks notebooks-aws exercises reliability bench clean

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.txt
	@base=$$(command -v python3.13 || command -v python3); \
	if ! "$$base" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null; then \
	  echo "This workshop needs Python 3.13 (the Lambda runtime's). Install it (pyenv install 3.13, or the conda route in README.md) and run make again."; exit 1; fi; \
	test -x $(PY) || "$$base" -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@# the workshop package and the app's source importable from notebooks, as from tests
	@printf '%s\n' "$(CURDIR)" "$(CURDIR)/sam-app/src" > "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/workshop.pth"
	@touch $@

lab: $(VENV)/.installed ## JupyterLab on the notebooks (the main job)
	$(BIN)/jupyter lab notebooks/

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

clean: ## remove build output and caches (keeps .venv)
	rm -rf sam-app/.aws-sam .pytest_cache .workshop
