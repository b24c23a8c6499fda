# Two entry points for a newcomer: `make run` (set up, then the embedded default study under mpirun)
# and `make test` (set up, then the test suite). Set-up is idempotent and re-runs when setup.py changes.
VENV ?= .venv
PY := $(VENV)/bin/python
NP ?= 3

.PHONY: setup run test
setup: $(VENV)/.installed

$(VENV)/.installed: setup.py
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build on machines that do not need it.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q mpich -e '.[all]'
	touch $@

run: setup
	$(VENV)/bin/mpirun -np $(NP) $(PY) -m pbo.run

# Everything, the slow end-to-end LLM runs and the docstring examples of pbo/ included (`-m "not slow"` skips the former).
test: setup
	$(PY) -m pytest -q --doctest-modules pbo tests
