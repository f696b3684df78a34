# dlseminar: `make demo` and `make test` set everything up on a machine with only Python.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
ARCHITECTURES := shapes_alexnet shapes_vgg11 shapes_vgg11_small_lr shapes_vgg11_bn shapes_resnet18 shapes_googlenet
LESSONS := xor_perceptron xor_mlp linear_perceptron plane_regression diabetes_linear digits_mlp moons_overfit moons_early_stopping moons_mlp_dropout moons_regularisation circles_underfit xor_two_hidden

.PHONY: install demo test bench gpu-check lessons architectures sweeps zoo clean $(LESSONS) $(ARCHITECTURES)

# the stamp is older than pyproject.toml or this file (the extras installed below) -> install again
$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,export]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install dlseminar with its test tools and the export extra (onnx, onnxruntime)

demo: $(STAMP)  ## train the embedded default (an MLP on the bundled digits) and print the result
	$(BIN)/dlsem train --out runs/demo --overwrite

test: $(STAMP)  ## run the test suite (what CI runs)
	$(BIN)/python -m pytest

bench: $(STAMP)  ## Trainer vs hand-written loops (MLP, resnet18), a whole dlsem process vs a script, data pipeline rate, in-memory batcher vs DataLoader, bf16/channels_last, streamed folders' memory and pipeline rate
	$(BIN)/python benchmarks/engine_overhead.py
	$(BIN)/python benchmarks/startup.py
	$(BIN)/python benchmarks/image_throughput.py
	$(BIN)/python benchmarks/batcher.py
	$(BIN)/python benchmarks/precision.py
	$(BIN)/python benchmarks/streaming.py

gpu-check: $(STAMP)  ## on a CUDA machine: every task in fp32/bf16/fp16/channels_last/compile, determinism, DDP, CIFAR-10 timing
	$(BIN)/python benchmarks/gpu_check.py

lessons: $(LESSONS)  ## run every lesson recipe in configs/

$(LESSONS): $(STAMP)
	$(BIN)/dlsem train configs/$@.yaml --out runs/$@ --overwrite

# lesson 8: each famous family from scratch on 4-class shapes (test acc 0.978-1.000; shapes_vgg11, plain VGG at
# BN's lr, stays at chance: the BN lesson); about 13 min in all on 2 quiet CPU cores
architectures: $(ARCHITECTURES)  ## AlexNet, plain VGG (at BN's lr and at its own), VGG-BN, ResNet-18, GoogLeNet recipes

$(ARCHITECTURES): $(STAMP)
	$(BIN)/dlsem train configs/$@.yaml --out runs/$@ --overwrite

# the comparison lessons: each sweep ends with a ranked table, runs/<recipe>-sweep/sweep.csv and
# plots/compare.png; run again, a sweep skips its finished members
sweeps: $(STAMP)  ## optimizers, lr too high, activations, L1/L2, dropout, batch modes, batch norm as sweeps; lr-find on digits
	$(BIN)/dlsem sweep configs/digits_optimizers.yaml --grid optim.name=sgd,momentum,rmsprop,adam --grid optim.lr=0.1,0.01,0.001
	$(BIN)/dlsem sweep configs/digits_lr_too_high.yaml --grid optim.lr=0.01,0.1,1,10
	$(BIN)/dlsem sweep configs/digits_activations.yaml --grid model.activation=sigmoid,tanh,relu,elu,maxout
	$(BIN)/dlsem sweep configs/xor_two_hidden.yaml --grid seed=0,1,2,3,4,5,6,7,8,9
	$(BIN)/dlsem sweep configs/moons_regularisation.yaml --grid loss.l1=0,0.001 --grid loss.l2=0,0.01
	$(BIN)/dlsem sweep configs/moons_mlp_dropout.yaml --grid model.dropout=0,0.5
	$(BIN)/dlsem sweep configs/digits_batch_modes.yaml --grid train.batch_size=1,32,full
	$(BIN)/dlsem sweep configs/digits_batchnorm.yaml --grid model.batch_norm=false,true
	$(BIN)/dlsem lr-find configs/digits_mlp.yaml --out runs/digits_mlp-lr-find

zoo: $(STAMP)  ## every image classifier of the zoo on generated shapes, alike: params, FLOPs, s/epoch, accuracy (runs/zoo-shapes)
	$(BIN)/dlsem zoo --data shapes --epochs 5

clean:
	rm -rf runs .pytest_cache
