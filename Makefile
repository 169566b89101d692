# Quickstart targets: `make run` (main job on real data), `make test` (the whole test suite)
# and `make test-fast` (the suite without the tests marked slow, under a minute).
# Each creates or reuses the virtual environment in $(VENV) and installs the project into it.
VENV ?= .venv
PY := $(VENV)/bin/python
FMNIST_DIR := /usr/share/datasets/fashion-mnist
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install install-test data run test test-fast

# The package alone, for running it; the tests also need pytest and the JAX and PyTorch
# backends (PyTorch's wheels are large: about 3 GB), so only they install those.
install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

$(VENV)/.installed: setup.cfg pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[test,backends]'
	touch $@

# Real Fashion-MNIST from Debian's package (docs/paper_facts.md, "Data on machines without
# internet"): the one paper dataset available offline.
data:
	@if [ -d $(FMNIST_DIR) ]; then echo "Fashion-MNIST found in $(FMNIST_DIR)"; \
	elif command -v apt-get >/dev/null; then \
	  $(SUDO) apt-get install -y -q dataset-fashion-mnist || \
	  { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q dataset-fashion-mnist; }; \
	else echo "apt-get not available: Fashion-MNIST will come from --data_dir or TFDS"; fi

# The README's main job: AlexNet on real Fashion-MNIST (Table 1 settings), a few epochs; it
# ends with the report (figures, report.md) in runs/alexnet_fashion_mnist/.
run: install data
	$(PY) -m rwc_keras.main --arch=alexnet --dataset=fashion_mnist --epochs=3 --seeds=0

test: install-test data
	$(PY) -m pytest -q

test-fast: install-test data
	$(PY) -m pytest -q -m "not slow"
