# The README's two commands: `make demo` and `make test`. Each creates the virtual environment
# on first use from requirements.lock (every dependency pinned by version and sha256, torch
# 2.14.1/torchvision 0.29.1 and their nvidia-* wheels at the versions this machine kind has on
# disk), then sam2 built without isolation and without its CUDA extension (a plain
# `pip install sam2` downloads ~2.6 GB into an isolated build and still builds no extension),
# then the project. `make lock` regenerates the lock file.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.usam-installed
LOCK := requirements.lock
# sam2 1.1.0 exists only as an sdist (published from a fork; usam-video doctor checks its files
# against upstream 2b90b9f): pinned by the sha256 of that sdist on the package index.
SAM2_PIN := sam2==1.1.0 --hash=sha256:7e0ea252d43c10d853e3acfce0b5770ac683c30481bd6de311300e9d44f45b74
# `make lock` pins these to the releases this machine kind has on disk (pip's configuration here
# adds local indexes that hold them); everything else resolves to the newest allowed release.
LOCK_CONSTRAINTS := torch==2.14.1 torchvision==0.29.1 nvidia-nvjitlink==13.4.92 cuda-pathfinder==1.8.3
LOCK_TOOLS := build/lock-tools

.PHONY: demo test lint clean-venv lock models model-figures

# 1. setuptools from the lock first, so that the lock's few sdists (iopath, antlr4) build
#    without isolation: an isolated build would fetch unpinned setuptools/packaging.
# 2. the lock, hash-checked, with --no-deps: pip installs exactly the lock and never resolves
#    against the index (a resolving install broke when a new httpx came out: pip 23 resolved
#    prefect's httpx[http2] extra afresh). `pip check` below and tests/test_lock.py prove that
#    the lock is complete. The PyPI hashes of torch and the nvidia wheels equal those of the
#    copies on this machine's disk, and pip takes the last of equally good candidates, i.e. the
#    local index: no torch download.
# 3. sam2, hash-checked, built against the torch and setuptools just installed, no CUDA extension.
# 4. the project, editable, with no dependency resolution and no isolated build.
$(STAMP): pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	awk '/^setuptools==/ {p = 1} p {print} p && !/\\$$/ {exit}' $(LOCK) \
		| $(PY) -m pip install -q --require-hashes --no-deps -r /dev/stdin
	$(PY) -m pip install -q --require-hashes --no-deps --no-build-isolation -r $(LOCK)
	printf '%s\n' '$(SAM2_PIN)' | SAM2_BUILD_CUDA=0 $(PY) -m pip install -q --require-hashes --no-deps \
		--no-build-isolation -r /dev/stdin
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	$(PY) -m pip check
	touch $(STAMP)

# Regenerate requirements.lock with pip-tools under Python 3.11 (pip-tools 7.6.2). sam2 is left
# out of the lock (--unsafe-package=sam2, which also replaces pip-tools' default unsafe set, so
# setuptools is pinned) but its dependencies are in; its metadata is read without an isolated
# build (with SAM2_BUILD_CUDA=0 it needs only setuptools), so nothing downloads a second torch.
lock:
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "make lock needs Python 3.11"'
	test -x $(LOCK_TOOLS)/bin/python || $(PYTHON) -m venv $(LOCK_TOOLS)
	$(LOCK_TOOLS)/bin/python -m pip install -q pip-tools==7.6.2 setuptools==80.9.0
	printf '%s\n' $(LOCK_CONSTRAINTS) > build/lock-constraints.txt
	SAM2_BUILD_CUDA=0 $(LOCK_TOOLS)/bin/pip-compile -q --generate-hashes --extra=dev --strip-extras \
		--unsafe-package=sam2 --no-build-isolation --no-emit-index-url --no-emit-find-links \
		--constraint=build/lock-constraints.txt --output-file=$(LOCK) pyproject.toml
	{ printf '%s\n' \
		'# requirements.lock: every dependency of usam-video and its dev extra, pinned by version and' \
		'# sha256. Regenerate with `make lock` (Python 3.11, pip-tools 7.6.2), which runs the' \
		'# pip-compile command below with build/lock-constraints.txt holding:' \
		'#   $(LOCK_CONSTRAINTS)' \
		'# sam2 is not in this file: the Makefile installs it after torch as' \
		'#   $(SAM2_PIN)' \
		'# built with SAM2_BUILD_CUDA=0 --no-build-isolation.'; \
		cat $(LOCK); } > $(LOCK).tmp && mv $(LOCK).tmp $(LOCK)

demo: $(STAMP)
	$(VENV)/bin/usam-video demo

# The project's own SAM 2 models and heads, from scratch on generated videos (CPU: about 1.5 h
# on 2 cores, both models in parallel; resumable: rerun after a stop), then their figures.
U := $(VENV)/bin/usam-video
GEN := build/generated
models: $(STAMP)
	$(U) train-model configs/training/micro.yaml & $(U) train-model configs/training/tiny.yaml & wait
	# again one by one: a finished stage only re-exports; a failed one fails here, visibly
	$(U) train-model configs/training/micro.yaml
	$(U) train-model configs/training/tiny.yaml
	$(U) train-model configs/training/tiny-ft.yaml
	$(U) generate heads $(GEN)/heads --count 96 --frames 48
	$(U) train-heads configs/training/heads-micro.yaml
	$(MAKE) model-figures

# Validation figures of the committed models (usam_video/weights/MODEL_CARD.md).
model-figures: $(STAMP)
	$(U) generate val $(GEN)/val --count 12
	rm -rf $(GEN)/val-micro.zarr $(GEN)/val-tiny.zarr $(GEN)/copy-first
	$(U) run configs/runs/generated-val-micro.yaml
	$(U) evaluate $(GEN)/val-micro.zarr --dataset configs/datasets/generated-val.yaml --out $(GEN)/eval-micro
	$(U) run configs/runs/generated-val-tiny.yaml
	$(U) evaluate $(GEN)/val-tiny.zarr --dataset configs/datasets/generated-val.yaml --out $(GEN)/eval-tiny
	$(U) baseline configs/datasets/generated-val.yaml $(GEN)/copy-first
	$(U) evaluate $(GEN)/copy-first --dataset configs/datasets/generated-val.yaml --out $(GEN)/eval-copy-first
	$(U) simulate-clicks configs/runs/generated-val-micro.yaml --fraction 0.05 --score iou_micro --json \
		> $(GEN)/clicks.json

# pytest-xdist: one worker per core, at most 4 (each worker builds its own session fixtures: the
# small SAM 2, the generated stores, ~1.5 GB); --dist loadgroup hands tests/service, which starts a Prefect
# server to one worker (tests/conftest.py schedules them), so the server starts once.
# PYTEST_WORKERS= runs serially.
PYTEST_WORKERS ?= -n auto --maxprocesses 4 --dist loadgroup

# lint-imports: ../shared/ARCHITECTURE.md's import rules as import-linter contracts
# ([tool.importlinter] in pyproject.toml).
test: $(STAMP)
	$(VENV)/bin/ruff check usam_video flows tests
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m pytest $(PYTEST_WORKERS)

lint: $(STAMP)
	$(VENV)/bin/ruff check usam_video flows tests
	$(VENV)/bin/lint-imports --no-cache

clean-venv:
	rm -rf $(VENV)
