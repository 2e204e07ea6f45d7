# Two commands do everything on a fresh machine with Python 3.11:
#   make demo   -> set up .venv, run the whole pipeline on the bundled demo data (CPU), write runs/demo/
#   make test   -> set up .venv, run the test suite
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export NUMBA_CACHE_DIR ?= $(CURDIR)/.cache/numba
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
export MPLBACKEND ?= Agg

.PHONY: demo test setup clean-venv

$(STAMP): pyproject.toml requirements/constraints.txt
	@test -x $(PY) || $(shell command -v $(PYTHON) || echo python3) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=23.2"
	# torch is pinned in the same pip run (constraints) so nothing can pull a CUDA build.
	$(PY) -m pip install --quiet -c requirements/constraints.txt "torch==2.13.0" -e ".[dev,scale]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	# the public data: found (<repo>/../shared/data, $$WORKBENCH_DATA_DIR, the user cache) or fetched once (~10 MB)
	HF_HUB_OFFLINE=0 HF_DATASETS_OFFLINE=0 $(PY) -m workbench data ensure
	$(PY) -m workbench run --config configs/demo.yaml

test: $(STAMP)
	$(PY) -m pytest -q

clean-venv:
	rm -rf $(VENV)
