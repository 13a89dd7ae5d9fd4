# Two commands on a fresh Debian machine:  `make run` (the main job)  and  `make test` (the test suite).
# Both create the virtual environment, install PyTorch and the project, and make sure the dataset is there.

VENV    ?= .venv
PY      := $(VENV)/bin/python
FMNIST  := $(VENV)/bin/fmnist
RECIPE  ?= fast
OUT     ?= runs/main

.PHONY: run test setup data clean

run: data
	$(FMNIST) data info
	$(FMNIST) data show --split train --n 25 --out $(OUT)/samples.png
	$(FMNIST) train $(RECIPE) --out $(OUT)
	$(FMNIST) evaluate $(OUT)

test: data
	$(PY) -m pytest -q

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/setup.sh
	VENV=$(VENV) bash scripts/setup.sh
	touch $@

data: setup
	FMNIST=$(FMNIST) bash scripts/ensure-data.sh

clean:
	rm -rf $(VENV) runs
