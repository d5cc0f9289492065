# Two commands for a newcomer: `make demo` and `make test`. Both set everything up first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
PORT   ?= 8888
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: venv demo app test test-fast lint bench results clean

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if v >= (3, 11) else "compresswidgets needs Python >= 3.11 (found %d.%d): run make PYTHON=/path/to/python3.11" % v)'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

venv: $(VENV)/.installed  ## create or update the virtual environment

demo: venv  ## serve the quickstart notebook in JupyterLab (Ctrl+C stops it)
	@echo "Preparing the demo model (trains once in a few seconds, then cached)..."
	$(BIN)/python -c "import compresswidgets as cw; cw.demo_model()"
	@echo "Open the URL printed below (with its token) in your browser."
	$(BIN)/jupyter lab --no-browser --ip=127.0.0.1 --port=$(PORT) $(ROOT_FLAG) \
		--LabApp.news_url= --LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate \
		--ServerApp.default_url=/lab/tree/notebooks/00_quickstart.ipynb

app: venv  ## the Studio alone as a Voila web app on the demo model (a no-code station)
	$(BIN)/python -c "import compresswidgets as cw; cw.demo_model()"
	$(BIN)/voila notebooks/studio_app.ipynb --no-browser --Voila.ip=127.0.0.1 --port=$(PORT)

lint: venv
	$(BIN)/ruff check compresswidgets tests benchmarks

# The suite runs in JOBS worker processes (pytest-xdist), by default one per core, at most 4:
# most tests use one core, and each worker holds its own TensorFlow and model workers.
JOBS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); [ $$n -gt 4 ] && n=4; echo $$n)

test: venv lint  ## lint, then the whole suite: core, widgets, notebooks, real browser
	$(BIN)/python -m pytest -n $(JOBS)

test-fast: venv lint  ## the inner loop (under 3 min): no browser, notebooks, zoo or slow modules
	$(BIN)/python -m pytest -q -n $(JOBS) -m "not browser and not notebook and not slow" --ignore=tests/zoo

bench: venv  ## speed targets: each prints its ratio against a floor measured in the same run
	$(BIN)/python benchmarks/bench_inspect.py
	$(BIN)/python benchmarks/bench_memory.py
	$(BIN)/python benchmarks/bench_harness.py
	$(BIN)/python benchmarks/bench_resnet.py
	$(BIN)/python benchmarks/bench_preview.py
	$(BIN)/python benchmarks/bench_bridge.py
	$(BIN)/python benchmarks/bench_convert.py
	$(BIN)/python benchmarks/bench_sweep.py

results: venv  ## docs/results.md: accuracy and sizes of every technique on the demo model
	$(BIN)/python benchmarks/results_table.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
