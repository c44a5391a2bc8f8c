# The two set-up commands of README.md. Both create .venv and install tinygen into it.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: demo test bench clean

TARGET ?= esp-idf
BOARD ?= esp32s3

# Generate a project from the bundled example model into build/demo/shapes_cnn
# (another target: make demo TARGET=zephyr BOARD=qemu_x86).
demo: $(VENV)/.installed
	PATH="$(abspath $(BIN)):$$PATH" examples/render_demo.sh $(TARGET) $(BOARD) build/demo

# Run the test suite (real converter, real TFLite-Micro runtime; firmware toolchain tests
# skip with a reason when idf.py / arduino-cli / west are not installed), on WORKERS processes
# (pytest-xdist; a test file stays on one worker, so its fixtures are built once).
WORKERS ?= 2
test: $(VENV)/.installed
	$(BIN)/python -m pytest -n $(WORKERS) --dist loadfile $(PYTEST_ARGS)

# CORPUS=DIR: the published models bench/arena_evidence.yaml names (default ../shared/corpus).
bench: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python bench/run.py

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

clean:
	rm -rf $(VENV) build .pytest_cache
