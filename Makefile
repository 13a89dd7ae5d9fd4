# Two commands on a fresh Debian machine:  `make run` (the main job)  and  `make test` (the test suite).
# Both create the virtual environment, install PyTorch and the project, and make sure the dataset is there.

VENV    ?= .venv
PY      := $(VENV)/bin/python
FMNIST  := $(VENV)/bin/fmnist
RECIPE  ?= fast
OUT     ?= runs/main

.PHONY: run test bench-smoke setup data clean

# The main job replaces the run it made last time (--overwrite); the sample grid goes into the new run directory.
run: data
	$(FMNIST) data info
	$(FMNIST) train $(RECIPE) --out $(OUT) --overwrite
	$(FMNIST) data show --split train --n 25 --out $(OUT)/samples.png
	$(FMNIST) evaluate $(OUT)

test: data
	$(PY) -m pytest -q

# Every benchmark module in its --quick smoke mode, one after another (make stops at the first failure);
# they write only under runs/bench/quick, never into docs/. benchmarks.keras_reference needs a Keras Python
# and is left out; side_by_side --quick runs our side of it.
bench-smoke: data
	$(PY) -m benchmarks.step_time --quick
	$(PY) -m benchmarks.train_speed --quick
	$(PY) -m benchmarks.inference_speed --quick
	$(PY) -m benchmarks.tune --quick
	$(PY) -m benchmarks.ablation --quick
	$(PY) -m benchmarks.tta --quick
	$(PY) -m benchmarks.ensemble --quick
	$(PY) -m benchmarks.reproduce_seeds --quick
	$(PY) -m benchmarks.modern_recipes --quick
	$(PY) -m benchmarks.cv_seeds --quick
	$(PY) -m benchmarks.side_by_side --quick
	$(PY) -m benchmarks.frontier --quick
	$(PY) -m benchmarks.photos --quick
	$(PY) -m benchmarks.fuzz --quick
	$(PY) -m benchmarks.serve_load --quick

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/setup.sh
	VENV=$(VENV) bash scripts/setup.sh
	touch $@

data: setup
	FMNIST=$(FMNIST) bash scripts/ensure-data.sh

clean:
	rm -rf $(VENV) runs
