# The two commands: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
PYTEST_ARGS ?=
DEMO_OUT ?= out/demo

.PHONY: demo test install install-dev bench default-model clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Stamp files: reinstall only when the project's metadata changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e ".[dev]"
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: install
	$(BIN)/deepfake-attention demo --out $(DEMO_OUT)

test: install-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Train, calibrate, evaluate and install the shipped default model (under 2 hours on 2 CPU cores).
default-model: install-dev
	$(BIN)/python -m deepfake_attention.recipe --data ../shared/data --out runs/default-model --install

bench: install-dev
	$(BIN)/python bench/explain_speed.py
	$(BIN)/python bench/inference_speed.py
	$(BIN)/python bench/analyze_throughput.py
	$(BIN)/python bench/face_detection.py
	$(BIN)/python bench/video_tracks.py
	$(BIN)/python bench/video_speed.py
	$(BIN)/python bench/service_load.py
	$(BIN)/python bench/scale.py

clean:
	rm -rf $(VENV) out runs build dist src/*.egg-info .pytest_cache
