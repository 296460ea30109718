# cra: `make demo` runs the main job on the bundled example; `make test` runs the suite. Both are idempotent.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
CRA    := $(VENV)/bin/cra
EXAMPLE := examples/ringbuf

.PHONY: demo test venv clean-venv

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# Stamps re-run an install only when pyproject.toml changes.
$(VENV)/.stamp-test: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[test,tier0]'
	touch $@

$(VENV)/.stamp-demo: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[models]'
	touch $@

venv: $(VENV)/.stamp-test

demo: $(VENV)/.stamp-demo
	$(CRA) models install
	$(CRA) run implement $(EXAMPLE)/ringbuf.c --symbol ringbuf_pop
	$(CRA) logs --root $(EXAMPLE) -n 5

test: $(VENV)/.stamp-test
	$(CRA) models install qwen2.5-coder-0.5b
	$(PY) -m pytest -q -p no:cacheprovider tests

clean-venv:
	rm -rf $(VENV)
