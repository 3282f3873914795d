# Two set-up commands: `make run` (whole pipeline on the embedded data) and `make test`.
# Both create or refresh the virtualenv in .venv first.

VENV        ?= .venv
PY          := $(VENV)/bin/python
# torch goes in before the project so its version is chosen here: 2.13.0 is the CPU wheel
# on CPU-only machines that ship it, and PyPI's CUDA build elsewhere. Override for your CUDA:
#   make run TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
TORCH_SPEC  ?= torch==2.13.0
PYTEST_ARGS ?=
# Extra arguments of the pipeline flow, e.g. make run RUN_ARGS="--set train.epochs=2"
RUN_ARGS    ?=

# Offline, no telemetry, all state inside the project.
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export HF_HUB_DISABLE_TELEMETRY := 1
export TRANSFORMERS_NO_ADVISORY_WARNINGS := 1
export TOKENIZERS_PARALLELISM := false
export DVC_NO_ANALYTICS := 1
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1
export PREFECT_HOME ?= $(CURDIR)/.prefect
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 90
export PREFECT_LOGGING_EXTRA_LOGGERS := rmcore
# rmcore logs outside a flow run (tests, plain CLI) stay local instead of warning
export PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW := ignore
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: run test lint venv venv-dev clean

$(VENV)/.stamp-base: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q --config-settings editable_mode=compat -e ".[pipeline]"
	touch $@

$(VENV)/.stamp-dev: $(VENV)/.stamp-base
	$(PY) -m pip install -q --config-settings editable_mode=compat -e ".[dev]"
	touch $@

venv: $(VENV)/.stamp-base
venv-dev: $(VENV)/.stamp-dev

# The whole pipeline through the Prefect flow (a temporary local Prefect server unless
# PREFECT_API_URL is set), then `dvc push` to the default DVC remote.
run: venv
	$(VENV)/bin/rmpipe run $(RUN_ARGS)

test: venv-dev
	$(PY) -m pytest $(PYTEST_ARGS)

lint: venv-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

clean:
	rm -rf data/normalized data/tokenized models checkpoints metrics plots mlflow.db mlartifacts .prefect
