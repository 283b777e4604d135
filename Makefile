# The README's two commands: `make demo` and `make test`. Each creates the virtual environment
# on first use. torch/torchvision come first (the versions this machine kind has on disk), then
# sam2 built without isolation and without its CUDA extension (a plain `pip install sam2`
# downloads ~2.6 GB into an isolated build and still builds no extension), then the project.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.usam-installed
TORCH_PINS := torch==2.14.1 torchvision==0.29.1

.PHONY: demo test lint clean-venv

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q $(TORCH_PINS)
	SAM2_BUILD_CUDA=0 $(PY) -m pip install -q --no-build-isolation sam2==1.1.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/usam-video demo

test: $(STAMP)
	$(VENV)/bin/ruff check usam_video flows tests
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check usam_video flows tests

clean-venv:
	rm -rf $(VENV)
