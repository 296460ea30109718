# cra: `make demo` runs the main job on the bundled example; `make test` runs the suite. Both are idempotent.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
CRA    := $(VENV)/bin/cra
EXAMPLE := examples/ringbuf

.PHONY: demo test lint venv clean-venv llama-server vscode-e2e bytecode

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# Stamps re-run an install only when pyproject.toml changes.
$(VENV)/.stamp-test: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[test,tier0,train]'
	touch $@

$(VENV)/.stamp-demo: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[models]'
	touch $@

venv: $(VENV)/.stamp-test

# cra's own .pyc files, as pip writes them for a regular install (an editable one does not): a language server
# started where PYTHONDONTWRITEBYTECODE is set would otherwise compile every module of cra on each start.
bytecode: | $(PY)
	$(PY) -m compileall -q cra > /dev/null

demo: $(VENV)/.stamp-demo bytecode
	$(CRA) models install
	$(CRA) run implement $(EXAMPLE)/ringbuf.c --symbol ringbuf_pop
	$(CRA) logs --root $(EXAMPLE) -n 5

# llama.cpp's own server, for the remote engine's `lora`-field tests (built once, cached; they skip without it).
llama-server: | $(PY)
	PYTHON=$(PY) scripts/build-llama-server.sh || echo "llama-server: build failed; its tests will skip"

# code-server (a real VS Code) for the VS Code end-to-end test (installed once, cached; the test skips without it).
vscode-e2e:
	scripts/install-vscode-e2e.sh || echo "vscode-e2e: install failed; the real-VS-Code test will skip"

# ruff (with the mutable-default check) and mypy over the package; part of the test command.
lint: $(VENV)/.stamp-test
	$(VENV)/bin/ruff check cra tests
	$(VENV)/bin/mypy cra

test: $(VENV)/.stamp-test bytecode llama-server vscode-e2e lint
	$(CRA) models install qwen2.5-coder-0.5b
	$(PY) -m pytest -q -p no:cacheprovider tests

clean-venv:
	rm -rf $(VENV)
