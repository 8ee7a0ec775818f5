# make demo: index rendered Relation Scenes and search relations with the bundled model; make test: the test suite.
# Both create $(VENV) when it is missing and install the package (editable) with its dev extra.
# make test-slow: the long tests (the reliability suite: kills, a full disk, the memory bound), in $(VENV).
# make test-wheel: the same suite from this checkout with the package installed from a wheel in $(WHEEL_VENV).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.vitr-installed
WHEEL_VENV ?= .venv-wheel
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: demo test test-slow test-wheel install bench train-scenes-s eval-scenes-s

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(TORCH)
	$(PY) -m pip install -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/vitr demo --out demo-out

test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

test-wheel:
	rm -rf $(WHEEL_VENV) dist
	$(PYTHON) -m venv $(WHEEL_VENV)
	$(WHEEL_VENV)/bin/python -m pip install $(TORCH)
	$(WHEEL_VENV)/bin/python -m pip wheel --no-deps -w dist .
	$(WHEEL_VENV)/bin/python -m pip install "$$(ls dist/vitr_qdrant-*.whl)[dev]"
	$(WHEEL_VENV)/bin/python -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/bench_render.py

# The shipped model vitr-scenes-s, exactly as trained (see encoders/weights/vitr-scenes-s/MODEL_CARD.md).
# threads=1 keeps each stage steady on a shared 2-core machine; on a GPU drop it.
train-scenes-s: $(STAMP)
	$(VENV)/bin/vitr train model=vitr-scenes-s stage=clip pool_size=40000 pool_cache=data/pool-40k-64.npz batch_size=128 epochs=3 lr=1e-3 warmup_steps=200 eval_every=0 threads=1 out=runs/scenes-clip
	$(VENV)/bin/vitr train model=vitr-scenes-s stage=head init=runs/scenes-clip/last pool_size=40000 pool_cache=data/pool-40k-64.npz batch_size=128 epochs=4 lr=2e-3 warmup_steps=100 eval_every=1 eval_images=200 eval_pairs=200 attr_weight=1.0 threads=1 out=runs/scenes-head

# The model card's evaluation table (1,000-image galleries, both splits, all three modes).
eval-scenes-s: $(STAMP)
	$(PY) -m vitr_qdrant.encoders.model_eval --n-images 1000 --n-pairs 500 --out runs/eval-scenes-s.json --markdown
