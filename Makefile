# The two commands README promises; both work offline on a fresh machine (package registries only).
PYTHON ?= python3

.PHONY: install demo test lint bench

install:
	$(PYTHON) -m pip install -q -e '.[dev,demo,serve]'

# The demo needs no torch: a plain install plus the sample's sources (ONNX Runtime runs the model).
demo:
	$(PYTHON) -m pip install -q -e '.[demo]'
	$(PYTHON) pipelines/demo.py --out demo-output

test: install
	$(PYTHON) -m pytest -q
	$(PYTHON) -m ruff check vidhash tests benchmarks pipelines

lint:
	$(PYTHON) -m ruff check vidhash tests benchmarks pipelines
	$(PYTHON) -m ruff format --check vidhash tests benchmarks pipelines

bench:
	$(PYTHON) benchmarks/extract.py
	$(PYTHON) benchmarks/search.py
	$(PYTHON) benchmarks/index.py
