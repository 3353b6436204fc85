# Two entry points, each doing its own set-up in a virtual environment (.venv):
#   make run    trains OptimizedNet with the default recipe, then regenerates backprop/output/
#   make test   runs the test suite (make test-slow: the tests marked slow, minutes more)
#   make test-oldest  runs it again in .venv-oldest, built with the oldest versions requirements.txt
#               allows (constraints-oldest.txt): the floor of the supported torch range
# MNIST is read from $(DATA_DIR)/MNIST/raw/ (downloaded there if missing). With no internet,
# put the four original files there (gzipped is fine); `make data` copies them from
# $(OFFLINE_MNIST) when that folder exists.

PYTHON ?= python3
VENV ?= .venv
VENV_OLDEST ?= .venv-oldest
DATA_DIR ?= data
OFFLINE_MNIST ?= ../shared/mnist
BIN = $(VENV)/bin

.PHONY: run test test-slow test-oldest data notebook bench

run: $(VENV)/.installed data
	$(BIN)/python train.py --data-dir $(DATA_DIR)
	$(BIN)/python -m backprop --out backprop/output

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest

test-slow: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -m slow

# The same suite on the floor versions. On Linux x86_64, PyPI's torch 2.1.0 needs its CUDA 12
# libraries (nvidia-*-cu12 and triton: 1.9 GB of the 2.7 GB download) even to be imported on a
# CPU, so this venv takes 5 GB; building it took 2.5 to 3 minutes here, with no pip cache.
test-oldest: $(VENV_OLDEST)/.installed-dev
	$(VENV_OLDEST)/bin/python -m pytest

# The second pass keeps only the last state of each progress bar in the saved notebook.
notebook: $(VENV)/.installed-dev data
	$(BIN)/jupyter nbconvert --to notebook --execute --inplace S6.ipynb
	$(BIN)/jupyter nbconvert --to notebook --inplace --CoalesceStreamsPreprocessor.enabled=True S6.ipynb

# Every benchmark, writing bench/results/ (hours: the frontier trains every model over ten seeds).
# Figures depend on the machine: bench/README.md says which machine each committed file comes from.
bench: $(VENV)/.installed-dev data
	mkdir -p bench/results
	$(BIN)/python -m bench.speed --data-dir $(DATA_DIR) | tee bench/results/speed.txt
	$(BIN)/python -m bench.tricks | tee bench/results/tricks.txt
	ONEDNN_MAX_CPU_ISA=AVX2 $(BIN)/python -m bench.tricks | tee bench/results/tricks-avx2.txt
	$(BIN)/python -m bench.profile | tee bench/results/profile.txt
	ONEDNN_MAX_CPU_ISA=AVX2 $(BIN)/python -m bench.profile | tee bench/results/profile-avx2.txt
	ONEDNN_MAX_CPU_ISA=AVX2 $(BIN)/python -m bench.frontier --split test --models OptimizedNet --data-dir $(DATA_DIR) > /dev/null
	$(BIN)/python -m bench.frontier --split test --data-dir $(DATA_DIR) | tee bench/results/frontier.test.md
	model=$$(mktemp --suffix=.pt) && $(BIN)/python train.py --data-dir $(DATA_DIR) --save-model $$model && \
		$(BIN)/python -m bench.own_digits --model $$model --data-dir $(DATA_DIR) | tee bench/results/own_digits.txt; \
		status=$$?; rm -f $$model; exit $$status

data:
	@if [ ! -e $(DATA_DIR)/MNIST/raw/train-images-idx3-ubyte ] && [ -d $(OFFLINE_MNIST) ]; then \
		mkdir -p $(DATA_DIR)/MNIST/raw && cp $(OFFLINE_MNIST)/*-ubyte.gz $(DATA_DIR)/MNIST/raw/ && \
		echo "Copied the offline MNIST files from $(OFFLINE_MNIST) to $(DATA_DIR)/MNIST/raw/"; \
	fi

$(VENV)/.installed: requirements.txt constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -c constraints.txt
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt -c constraints.txt
	touch $@

$(VENV_OLDEST)/.installed-dev: requirements.txt requirements-dev.txt constraints-oldest.txt
	$(PYTHON) -m venv $(VENV_OLDEST)
	$(VENV_OLDEST)/bin/python -m pip install --quiet --upgrade pip
	$(VENV_OLDEST)/bin/python -m pip install --quiet -r requirements-dev.txt -c constraints-oldest.txt
	touch $@
