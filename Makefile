# Two commands run the course:  `make lab`  opens it,  `make test`  checks it.
# Both create (or reuse) .venv, install the pinned versions and ftlib (editable).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# The test run is offline and on the quick budget unless you say otherwise,
# e.g. `make test FTLIB_BUDGET=full`.
FTLIB_OFFLINE ?= 1
FTLIB_BUDGET  ?= quick
PYTEST_ARGS   ?=
# Free disk a fresh .venv needs (PyTorch with its CUDA libraries: about 6 GB); 0 skips the check.
MIN_FREE_GB   ?= 6.5

.PHONY: install lab test unit notebooks doctor bench times sweep memory solutions gpu-check gpu-backbone fetch clean

install: $(STAMP)

$(STAMP): requirements.txt constraints.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python data_scripts/preflight.py $(VENV) $(MIN_FREE_GB)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -r requirements.txt -e .
	@touch $(STAMP)

# Jupyter refuses to start as root (containers, some lab images) unless told it may.
LAB_ARGS ?= $(if $(filter 0,$(shell id -u)),--allow-root,)

lab: install
	$(BIN)/jupyter lab $(LAB_ARGS) notebooks/

test: install
	FTLIB_OFFLINE=$(FTLIB_OFFLINE) FTLIB_BUDGET=$(FTLIB_BUDGET) \
	$(BIN)/python -m pytest tests notebooks --ignore=notebooks/drafts --nbval-lax --nbval-current-env \
	    --nbval-cell-timeout=900 --durations=15 $(PYTEST_ARGS)

unit: install
	FTLIB_OFFLINE=$(FTLIB_OFFLINE) $(BIN)/python -m pytest tests $(PYTEST_ARGS)

notebooks: install
	FTLIB_OFFLINE=$(FTLIB_OFFLINE) FTLIB_BUDGET=$(FTLIB_BUDGET) \
	$(BIN)/python -m pytest notebooks --ignore=notebooks/drafts --nbval-lax --nbval-current-env --nbval-cell-timeout=900 $(PYTEST_ARGS)

doctor: install
	$(BIN)/python -m ftlib doctor

bench: install
	$(BIN)/python -m ftlib.bench --quick --json bench.json

# Runs every lesson on the quick budget, offline, and writes the measured times into
# ftlib/course/lesson_times.json and the README (about 6 minutes on 2 CPU cores).
times: install
	$(BIN)/python -m ftlib.bench.lesson_times --write

# The claim sweep: every lesson once per seed (SEEDS), offline, on BUDGET; a table of which
# claims each seed showed. Slow (one lesson run per seed), so not part of `make test`.
SEEDS ?= 0 1 2
BUDGET ?= quick
sweep: install
	$(BIN)/python -m ftlib.bench.claims notebooks/[0-9]*.ipynb --seeds $(SEEDS) --budget $(BUDGET) --json claims_sweep.json

# Peak memory of every lesson (offline, quick budget) and of the real-data loaders on full-size
# local copies of the publishers' files; fails when one is over 1.5 GiB (about 15 minutes).
memory: install
	$(BIN)/python -m ftlib.bench.memory --json memory.json

# Solved copies of every lesson for instructors, in solutions/ (not committed); then
# `.venv/bin/python -m ftlib.grade solutions/` shows every exercise passed.
solutions: install
	$(BIN)/python -m data_scripts.solutions

# On a GPU machine (no network, nothing installed: it uses .venv when there is one, else
# python3): the CUDA paths, every lesson on CUDA and the tests, into gpu_check.json.
gpu-check:
	$(if $(wildcard $(BIN)/python),$(BIN)/python,python3) -m ftlib.bench.gpu_check --json gpu_check.json $(GPU_CHECK_ARGS)

# On a GPU machine, in one command: a bigger build of the offline backbone (5 minutes of bf16
# training at batch 512, the batches drawn by 14 processes) into $(GPU_OUT), with its card;
# ftlib/weights is left alone. Compare it with the shipped one on the CPU afterwards:
# `transfer_benchmark(weights_dir=Path("DIR"))` from ftlib.bench.transfer.
GPU_OUT ?= gpu_backbone
gpu-backbone:
	$(if $(wildcard $(BIN)/python),$(BIN)/python,python3) -m data_scripts.pretrain_backbone --device cuda \
		--workers 14 --threads 2 --batch-size 512 --lr 3e-3 --warmup 300 --steps 20000 --time-schedule \
		--minutes 5 --ckpt-every 1000 --restart --work-dir /tmp/ftlib_gpu_pretrain --out-dir $(GPU_OUT) $(GPU_BACKBONE_ARGS)

fetch: install
	$(BIN)/python -m data_scripts.fetch --all

clean:
	rm -rf $(VENV) .pytest_cache
