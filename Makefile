# make demo: index rendered Object Scenes and search relations with the bundled model; make test: the test suite.
# Both create $(VENV) when it is missing and install the package (editable) with its dev extra.
# make test-slow: the long tests (the reliability suite: kills, a full disk, the memory bound), in $(VENV).
# make test-wheel: the same suite from this checkout with the package installed from a wheel in $(WHEEL_VENV).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.vitr-installed
WHEEL_VENV ?= .venv-wheel
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: demo test test-slow test-wheel install bench train-scenes-s eval-scenes-s train-objects-s eval-objects-s loo-objects-s plots-objects-s first-stage-objects-s bench-first-stage

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
	$(VENV)/bin/vitr train model=vitr-scenes-s stage=head init=runs/scenes-clip/last pool_size=40000 pool_cache=data/pool-40k-64.npz batch_size=128 epochs=4 lr=2e-3 warmup_steps=100 eval_every=1 eval_images=200 eval_pairs=200 attr_weight=1.0 threads=1 name=vitr-scenes-s store_backbone=true out=runs/scenes-head

# The model card's evaluation table (1,000-image galleries, both splits, all three modes).
eval-scenes-s: $(STAMP)
	$(PY) -m vitr_qdrant.encoders.model_eval --model vitr-scenes-s --n-images 1000 --n-pairs 500 --out runs/eval-scenes-s.json --markdown

# The default model vitr-objects-s, exactly as trained (see encoders/weights/vitr-objects-s/MODEL_CARD.md):
# both stages on Object Scenes train, the pool drawn in the training styles (encoders/data/styles.py).
OBJECTS_POOL := data=object-scenes styles=true pool_size=50000 pool_cache=data/objects-pool-50k-128.npz
train-objects-s: $(STAMP)
	$(VENV)/bin/vitr train model=vitr-objects-s stage=clip $(OBJECTS_POOL) augment=0.8 batch_size=128 epochs=3 lr=1e-3 warmup_steps=300 eval_every=1 eval_images=200 eval_pairs=100 threads=2 out=runs/objects-clip
	$(VENV)/bin/vitr train model=vitr-objects-s stage=head init=runs/objects-clip/last $(OBJECTS_POOL) batch_size=128 epochs=3 lr=2e-3 warmup_steps=100 attr_weight=1.0 eval_every=1 eval_images=200 eval_pairs=100 threads=2 name=vitr-objects-s store_backbone=true out=runs/objects-head

# The default model's first stage (encoders/first_stage.py): fitted on 30,000 train scenes by
# distillation from the model's MaxSim (runs/vitr-objects-s-first), then fitted on from there with
# its own near misses in every step and softer targets, written with the model to
# runs/vitr-objects-s-first2 (its first_stage.safetensors and first_stage.json ship in
# encoders/weights/vitr-objects-s/).
first-stage-objects-s: $(STAMP)
	$(PY) -m vitr_qdrant.encoders.fit_first_stage --model vitr-objects-s --out runs/vitr-objects-s-first --images 30000 --steps 1200 --batch 512 --texts 128
	$(PY) -m vitr_qdrant.encoders.fit_first_stage --model runs/vitr-objects-s-first --init --out runs/vitr-objects-s-first2 --images 30000 --steps 1200 --batch 512 --texts 128 --lr 1e-3 --hard 4 --pool 50 --teacher-temperature 0.5 --student-temperature 0.1

# Stage 1 designs side by side and the default through the public API (benchmarks/bench_first_stage.py).
bench-first-stage: $(STAMP)
	$(PY) benchmarks/bench_first_stage.py cache --n 100000 --cache runs/first-stage-cache
	$(PY) benchmarks/bench_first_stage.py designs --sizes 10000 --cache runs/first-stage-cache --out runs/first-stage-designs-10k.json
	$(PY) benchmarks/bench_first_stage.py designs --sizes 100000 --designs global exact first first-only --cache runs/first-stage-cache --out runs/first-stage-designs-100k.json
	$(PY) benchmarks/bench_first_stage.py api --sizes 10000 100000 --out runs/first-stage-api.json
	$(PY) benchmarks/bench_first_stage.py million --n 1000000 --cache runs/first-stage-cache --out runs/first-stage-million.json

# The model card's tables: 1,000-image galleries, both splits, all three modes, every art set.
eval-objects-s: $(STAMP)
	$(PY) -m vitr_qdrant.encoders.model_eval --model vitr-objects-s --n-images 1000 --n-pairs 500 --out runs/eval-objects-s.json --markdown

# Leave one art set out: a smaller run of the same recipe on three sets, evaluated on the fourth.
ART_SETS := noto twemoji fluent-flat emojione
# Leave one art set out: each held-out set is its own target (both stages on the other three sets,
# evaluated on the held-out one), so `make -j2 loo-objects-s` runs two sets side by side.
loo-objects-s: $(foreach s,$(ART_SETS),runs/loo-$(s).json)

runs/loo-%.json: $(STAMP)
	seen=$$(echo $(ART_SETS) | tr ' ' '\n' | grep -vx $* | sed 's/.*/"&"/' | paste -sd, -); \
	pool="data=object-scenes styles=true pool_size=15000 pool_cache=data/loo-$*-15k-128.npz art=[$$seen] eval_art=$*"; \
	$(VENV)/bin/vitr train model=vitr-objects-s stage=clip $$pool augment=0.8 batch_size=128 epochs=3 lr=1e-3 warmup_steps=150 eval_every=0 threads=1 out=runs/loo-$*-clip && \
	$(VENV)/bin/vitr train model=vitr-objects-s stage=head init=runs/loo-$*-clip/last $$pool batch_size=128 epochs=2 lr=2e-3 warmup_steps=100 attr_weight=1.0 eval_every=0 threads=1 out=runs/loo-$*-head && \
	$(PY) -m vitr_qdrant.encoders.model_eval --model runs/loo-$*-head/last --art $* --n-images 500 --n-pairs 250 --mode vitr --mode global --out $@

# The model card's pictures: training curves and the evaluation per art set (with leave-one-out).
plots-objects-s: $(STAMP)
	$(PY) -m vitr_qdrant.encoders.plots training --log runs/objects-clip/log.jsonl --log runs/objects-head/log.jsonl --out encoders/weights/vitr-objects-s/training.png
	$(PY) -m vitr_qdrant.encoders.plots eval --results runs/eval-objects-s.json $(foreach s,$(ART_SETS),--loo runs/loo-$(s).json) --out encoders/weights/vitr-objects-s/evaluation.png
