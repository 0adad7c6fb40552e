# ouro-ray: three targets, each idempotent and working from a fresh clone.
#   make install   .venv with the project (editable) and its test extra
#   make demo      install, then the main job on the tiny world
#   make test      install, then the test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
, := ,
# A CUDA machine gets PyPI's default torch build and the gpu extra (vLLM, DeepSpeed); any other
# machine gets the CPU build torch==2.13.0 first, so nothing pulls a multi-GB CUDA wheel.
HAS_CUDA := $(shell nvidia-smi -L >/dev/null 2>&1 && echo 1)
EXTRAS := $(if $(HAS_CUDA),test$(,)gpu,test)
STAMP := $(VENV)/.ouro-installed-$(if $(HAS_CUDA),gpu,cpu)

.PHONY: install demo test

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(if $(HAS_CUDA),,$(BIN)/python -m pip install -q torch==2.13.0)
	$(BIN)/python -m pip install -q -e '.[$(EXTRAS)]'
	@touch $@

demo: install
	$(BIN)/ouro tiny-world --config configs/tiny.yaml

test: install
	$(BIN)/python -m pytest tests
