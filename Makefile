# Keyshard developer entry points. Every target installs what it needs into .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint infra-check eif parent-package bench soak fuzz clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## demo: set up and run the emulated cluster demo (the main job)
demo: $(STAMP)
	$(BIN)/keyshard dev demo

## test: the whole test suite, derandomised, one test module per core (what CI runs)
test: $(STAMP)
	HYPOTHESIS_PROFILE=ci $(BIN)/pytest -n auto --dist loadfile

## lint: ruff, mypy --strict and the import-direction contracts
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

## infra-check: terraform fmt, checkov with Keyshard's own policies, offline terraform checks
infra-check:
	bash infra/ci-checks.sh

## eif: build the enclave image with nitro-cli and record its PCRs in release/manifest.json
eif:
	bash infra/image/build-eif.sh $(EIF_ARGS)

## parent-package: the wheel tarball a node's user data installs, build/parent/keyshard-parent-<version>.tar
## (+ .sha256 for terraform's parent_package); PARENT_ARGS passes options, e.g. PARENT_ARGS='--version 0.2.0'
parent-package: $(STAMP)
	PYTHON=$(BIN)/python bash infra/build-parent-package.sh $(PARENT_ARGS)

## bench: throughput and latency benchmarks (timings live here, never in tests)
bench: $(STAMP)
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

## soak: idle and busy clients on the emulated cluster, goal zero dropped channels (~11 min;
## not in bench). SOAK_ARGS passes options, e.g. SOAK_ARGS='--minutes 1'
soak: $(STAMP)
	$(BIN)/python bench/soak_cluster.py $(SOAK_ARGS)

## fuzz: property tests with fresh randomness and more examples
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/pytest -m "not slow"

clean:
	rm -rf $(VENV) .venv-infra .pytest_cache .mypy_cache .ruff_cache .hypothesis
