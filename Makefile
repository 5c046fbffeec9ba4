# The two commands of the README: `make demo` and `make test`. Both bootstrap .venv on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
RESULTS ?= demo_results

.PHONY: venv demo test browser clean gpu-check

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Headless Chromium opens the HTML report in the tests.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || \
	  echo "warning: chromium could not be installed; browser tests will be skipped" >&2

demo: venv
	$(VENV)/bin/svconv sweep run sweeps/demo.yaml --results $(RESULTS)
	$(VENV)/bin/svconv bench quick --results $(RESULTS)
	$(VENV)/bin/svconv bench --name demo-scaling --grid method=exact,exact-torch channels=8,16,32 input_size=8,16,32 threads=1 --results $(RESULTS)
	$(VENV)/bin/svconv report $(RESULTS) -o $(RESULTS)/report.html
	@echo "demo: results in $(RESULTS)/ and report in $(RESULTS)/report.html"

test: venv browser
	$(PY) -m pytest -q

# The one-shot GPU check (README, GPU check): no install step, only torch, numpy, pandas, pyarrow, pyyaml,
# tqdm; the venv's Python when there is one, else $(PYTHON).
OUT ?= results/gpu_check
BUDGET ?= 360
gpu-check:
	PYTHONPATH=. $(if $(wildcard $(PY)),$(PY),$(PYTHON)) -m bench.gpu_check --out $(OUT) --budget-s $(BUDGET)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
