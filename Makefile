# dlseminar: `make demo` and `make test` set everything up on a machine with only Python.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
LESSONS := xor_perceptron xor_mlp linear_perceptron plane_regression digits_mlp moons_mlp_dropout moons_overfit

.PHONY: install demo test bench lessons clean $(LESSONS)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install dlseminar with its test tools

demo: $(STAMP)  ## train the embedded default (an MLP on the bundled digits) and print the result
	$(BIN)/dlsem train --out runs/demo --overwrite

test: $(STAMP)  ## run the test suite (what CI runs)
	$(BIN)/python -m pytest

bench: $(STAMP)  ## Trainer vs hand-written loops (MLP, resnet18), data pipeline rate, in-memory batcher vs DataLoader, bf16/channels_last
	$(BIN)/python benchmarks/engine_overhead.py
	$(BIN)/python benchmarks/image_throughput.py
	$(BIN)/python benchmarks/batcher.py
	$(BIN)/python benchmarks/precision.py

lessons: $(LESSONS)  ## run every lesson recipe in configs/

$(LESSONS): $(STAMP)
	$(BIN)/dlsem train configs/$@.yaml --out runs/$@ --overwrite

clean:
	rm -rf runs .pytest_cache
