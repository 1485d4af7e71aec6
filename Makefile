# The two set-up commands of the README:
#   make demo   - install into .venv and run the main job
#   make test   - install into .venv and run the whole test suite (what CI runs), then build
#                 the wheel, install it in a fresh venv outside the checkout and run the demo
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@# setuptools prints a generic notice for every editable install of a flat layout; nothing in
	@# our metadata causes it, so it is filtered by its text (other warnings still show)
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/crm-pulse demo

test: $(STAMP)
	scripts/ensure-chromium.sh
	$(BIN)/ruff check crm_pulse tests benchmarks examples
	$(BIN)/ruff format --check crm_pulse tests benchmarks examples
	$(BIN)/mypy crm_pulse
	$(BIN)/pytest -q
	scripts/wheel-smoke.sh

bench: $(STAMP)
	$(BIN)/python benchmarks/engine.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
