# The two commands of the README. Both set up a virtual environment in .venv first.
#   make sample   install the data pipeline and build the bundled samples into out/
#   make test     install everything (torch CPU first, then [train,dev,ray,curate]) and run the tests
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
# torch is pinned and installed first: an unpinned torch would pull several GB of CUDA wheels.
TORCH ?= torch==2.13.0

.PHONY: sample test lint validate setup setup-train clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.core: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.train: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e ".[train,dev,ray,curate]"
	touch $@ $(VENV)/.core

setup: $(VENV)/.core
setup-train: $(VENV)/.train

sample: $(VENV)/.core
	$(BIN)/alpacacot-data build --sample --out out

validate: $(VENV)/.core
	$(BIN)/alpacacot-data validate

test: $(VENV)/.train
	@# the trainer's tests skip without these; here they must run
	$(BIN)/python -c "import torch, transformers, peft, bitsandbytes, accelerate"
	$(BIN)/alpacacot-data validate
	$(BIN)/python -m pytest -q

lint: $(VENV)/.train
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

clean:
	rm -rf out $(VENV)
