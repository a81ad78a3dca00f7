# One command to set up and run the demo, one to set up and run the tests.
# Both create (or refresh, when pyproject.toml changes) the virtual environment in $(VENV).
#
# torch is installed first, pinned (TORCH_SPEC), so that the package install below finds
# it satisfied and does not pull a different build. Override for your machine, e.g.
#   make test TORCH_SPEC="torch==2.13.0" PIP_ARGS="--index-url <your CPU wheel index>"

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
PIP_ARGS ?=
STAMP := $(VENV)/.installed-stamp
ARGS ?=
PYTEST_ARGS ?=

.PHONY: setup demo test test-fast bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml examples/neumf/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(PIP_ARGS) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet $(PIP_ARGS) -e ".[test]"
	# the example of a model kept outside recsys (registered by its entry point; tests run on it)
	$(BIN)/python -m pip install --quiet $(PIP_ARGS) --no-deps -e examples/neumf
	touch $(STAMP)

# The whole pipeline on the built-in synthetic data, on a local Ray; extra Hydra overrides via ARGS=.
# Then the fine-tuned encoder (finetune, one trained MiniLM layer) through diagnosis at a small size
# (300 users, 200 items, 16 tokens), so the demo stays under 10 minutes on 2 CPUs (docs/finetune.md).
DEMO_MODELS ?= [pop,mf,content,two_tower,sasrec,lightgcn,textgraph]
FINETUNE_DEMO ?= dataset.synthetic.n_users=300 dataset.synthetic.n_items=200 dataset.synthetic.n_topics=4 \
	dataset.synthetic.mean_interactions_per_user=15 model.finetune.max_tokens=16 model.finetune.negatives=32 \
	train.batch_size=128
demo: setup
	$(BIN)/python -m rayjobs.pipeline "models=$(DEMO_MODELS)" $(ARGS)
	$(BIN)/python -m rayjobs.diagnose "models=[pop,finetune]" $(FINETUNE_DEMO) $(ARGS)
	$(BIN)/recsys report list

# Every test, Ray integration tests included, on TEST_WORKERS pytest-xdist workers (each worker shares one
# local Ray session among its Ray tests; whole test files go to one worker: tests/conftest.py).
TEST_WORKERS ?= 2
test: setup
	RAY_DATA_DISABLE_PROGRESS_BARS=1 $(BIN)/python -m pytest -q -n $(TEST_WORKERS) $(PYTEST_ARGS)

# Pure-logic tests only (no Ray), for quick iteration.
test-fast: setup
	$(BIN)/python -m pytest -q -m "not ray and not slow" $(PYTEST_ARGS)

bench: setup
	$(BIN)/python -m benchmarks.prepare

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis reports data_cache outputs
