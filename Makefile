# Quickstart: `make demo` runs the main job, `make test` runs the tests.
# Both build .venv/ with nothing but Python 3 and make; the stamps reinstall when pyproject.toml changes.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: demo test lint bench clean docs peers

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.demo-installed: pyproject.toml | $(PY)
	$(PIP) install -e ".[demo]"
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(PY)
	$(PIP) install -e ".[test]"
	touch $@

demo: $(VENV)/.demo-installed
	$(PY) -m npmlp demo

# The lint and type gate first (seconds), then the suite.
test: lint
	$(PY) -m pytest -q

# Style and strict types (configured in pyproject.toml).
lint: $(VENV)/.test-installed
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m mypy

# PyTorch, a benchmark peer: the CPU build (plain `torch` would pull gigabytes of CUDA).
peers: $(VENV)/.test-installed
	$(PIP) install "torch==2.13.0"

bench: $(VENV)/.test-installed
	$(PY) -m npmlp bench --peers

# The README's two pictures: run the demo, keep its circles regions and the tuned run's curves.
docs: $(VENV)/.demo-installed
	$(PY) -m npmlp demo --out runs/demo
	cp runs/demo/circles_2.png docs/decision_regions.png
	cp runs/demo/tuned/curves.png docs/learning_curves.png

clean:
	rm -rf $(VENV) runs build dist src/*.egg-info .pytest_cache .hypothesis
