# The two commands: `make demo` (train on an embedded synthetic dataset) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test bench lint clean

$(BIN)/.installed: pyproject.toml constraints-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints-dev.txt -e ".[dev]"
	touch $@

$(BIN)/.bench-installed: $(BIN)/.installed
	$(BIN)/pip install -q -c constraints-dev.txt -e ".[dev,bench]"
	touch $@

demo: $(BIN)/.installed
	$(BIN)/lightning-dicom demo

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q

bench: $(BIN)/.bench-installed
	$(BIN)/python benchmarks/run.py

lint: $(BIN)/.installed
	$(BIN)/ruff check lightning_dicom tests benchmarks notebooks
	$(BIN)/ruff format --check lightning_dicom tests benchmarks notebooks
	$(BIN)/mypy

clean:
	rm -rf $(VENV) demo_data .lightning_dicom lightning_logs
