# make demo: evaluate a reference scorer on Relation Scenes (JSON); make test: the test suite.
# Both create $(VENV) when it is missing and install the package with its dev extra.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.vitr-installed

.PHONY: demo test install bench

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m vitr_qdrant.encoders.evaluation --split test-iid --n-images 200 --n-pairs 100 --scorer oracle

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/bench_render.py
