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
# machine gets the CPU build torch==2.13.0 first, so nothing pulls a multi-GB CUDA wheel, and then
# DeepSpeed without prebuilt ops (its sdist builds against that torch, hence no build isolation), so
# the learner's ZeRO path runs and is tested on CPU too.
HAS_CUDA := $(shell nvidia-smi -L >/dev/null 2>&1 && echo 1)
EXTRAS := $(if $(HAS_CUDA),test$(,)gpu,test)
STAMP := $(VENV)/.ouro-installed-$(if $(HAS_CUDA),gpu,cpu)

.PHONY: install demo test

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(if $(HAS_CUDA),,$(BIN)/python -m pip install -q torch==2.13.0)
	$(BIN)/python -m pip install -q -e '.[$(EXTRAS)]'
	$(if $(HAS_CUDA),,$(BIN)/python -m pip install -q setuptools wheel && \
		DS_BUILD_OPS=0 $(BIN)/python -m pip install -q --no-build-isolation 'deepspeed>=0.19.8')
	@touch $@

demo: install
	$(BIN)/ouro run configs/tiny.yaml

test: install
	$(BIN)/python -m pytest tests
