# Two commands do everything on a fresh machine with Python 3.11:
#   make demo   -> set up .venv, run the whole pipeline on the bundled demo data (CPU), write runs/demo/
#   make test   -> set up .venv (and .venv-labelstudio for the Label Studio round-trip test), run the test suite
# and the documentation (docs/about.md):
#   make docs [RUN=runs/demo]        -> site/, offline, warnings fail; RUN= shows that run's executed notebooks
#   make docs-serve [RUN=runs/demo]  -> the same at http://127.0.0.1:8000, rebuilt on every change
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Label Studio (the server) pins Django & co. apart from ours: its own venv, used only by tests/test_label_studio.py.
LS_VENV  ?= .venv-labelstudio
LS_STAMP := $(LS_VENV)/.installed
export NUMBA_CACHE_DIR ?= $(CURDIR)/.cache/numba
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
export MPLBACKEND ?= Agg

RUN    ?=

.PHONY: demo test setup clean-venv docs docs-serve

$(STAMP): pyproject.toml requirements/constraints.txt
	@test -x $(PY) || $(shell command -v $(PYTHON) || echo python3) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=23.2"
	# torch is pinned in the same pip run (constraints) so nothing can pull a CUDA build.
	$(PY) -m pip install --quiet -c requirements/constraints.txt "torch==2.13.0" -e ".[dev,scale,docs,labelstudio]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

# ~2 min and ~1 GB once. The template database is migrated here (~75 s), so each test run copies it instead.
$(LS_STAMP): requirements/labelstudio.txt
	@test -x $(LS_VENV)/bin/python || $(shell command -v $(PYTHON) || echo python3) -m venv $(LS_VENV)
	$(LS_VENV)/bin/python -m pip install --quiet -r requirements/labelstudio.txt
	rm -rf $(LS_VENV)/template && mkdir -p $(LS_VENV)/template
	LABEL_STUDIO_BASE_DATA_DIR=$(CURDIR)/$(LS_VENV)/template SENTRY_DSN= LATEST_VERSION_CHECK=false COLLECT_ANALYTICS=false \
		$(LS_VENV)/bin/label-studio version > $(LS_VENV)/template.log 2>&1 || (tail -20 $(LS_VENV)/template.log; exit 1)
	touch $(LS_STAMP)

setup: $(STAMP)

demo: $(STAMP)
	# the public data: found (<repo>/../shared/data, $$WORKBENCH_DATA_DIR, the user cache) or fetched once (~10 MB)
	HF_HUB_OFFLINE=0 HF_DATASETS_OFFLINE=0 $(PY) -m workbench data ensure
	$(PY) -m workbench run --config configs/demo.yaml

test: $(STAMP) $(LS_STAMP)
	$(PY) -m pytest -q

# NO_MKDOCS_2_WARNING: Material's banner about its own end of life (May 2027; docs/about.md says what then).
docs: $(STAMP)
	WORKBENCH_DOCS_RUN="$(RUN)" NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

docs-serve: $(STAMP)
	WORKBENCH_DOCS_RUN="$(RUN)" NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs serve --dev-addr 127.0.0.1:8000

clean-venv:
	rm -rf $(VENV) $(LS_VENV)
