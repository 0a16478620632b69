# DSPEx — see README.md. Every target works on a fresh machine: `make setup`
# installs what is missing and is safe to run again.

GO        ?= go
BIN       := bin
DSPEX     := $(BIN)/dspex
GOFLAGS   ?=
FUZZTIME  ?= 3s
# VERSION is the release `dspex version` prints and saved programs record:
# the git tag at HEAD (without its leading v) when there is one, else the
# default in core/version.
VERSION   ?= $(patsubst v%,%,$(shell git describe --tags --exact-match 2>/dev/null))
LDFLAGS   := $(if $(VERSION),-X github.com/dspex/dspex/core/version.version=$(VERSION))
# Go tools the targets use, installed by setup into a project-local folder.
TOOLS     := $(BIN)/tools
# staticcheck 2026.2.2 is module version v0.8.2; it supports Go 1.26.
STATICCHECK_VERSION := v0.8.2
STATICCHECK := $(TOOLS)/staticcheck-$(STATICCHECK_VERSION)
export CGO_ENABLED := 1

# Python: the plugins' virtualenv. PYTHON only creates it; everything after runs in it.
PYTHON    ?= python3
VENV      := .venv
VENV_PY   := $(VENV)/bin/python
PY_EXTRAS := test,sampler,finetune,dev

.PHONY: all setup setup-go setup-python setup-tools setup-sandbox build test test-go test-python fuzz-brief fuzz \
	lint vet staticcheck fmt-check lint-python proto proto-check demo bench bench-quick bench-mipro golden-dspy screenshots clean \
	test-finetune-local

all: build

## setup: install everything a fresh machine lacks (idempotent)
setup: setup-go setup-tools setup-python setup-sandbox setup-browser

setup-go:
	@echo "== setup: Go modules (go mod download; the first time downloads them, a minute or so)"
	@$(GO) mod download

setup-tools: $(STATICCHECK)

# The sandbox (sandbox/, docs/sandbox.md) runs untrusted code in bubblewrap.
# Installed only when bwrap is missing; apt-get only (elsewhere: a hint).
setup-sandbox:
	@command -v bwrap >/dev/null 2>&1 || { \
	  echo "== setup: bubblewrap (apt-get install bubblewrap)"; \
	  if ! command -v apt-get >/dev/null 2>&1; then \
	    echo "setup: no apt-get here: install bubblewrap (bwrap) with the system's package manager" >&2; exit 1; fi; \
	  sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  $$sudo apt-get update -qq >/dev/null && \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends bubblewrap >/dev/null; }

# The dashboard's tests (cmd/dspex/internal/dashboard, docs/dashboard.md)
# drive headless Chromium. Installed only when chromium is missing; apt-get
# only (elsewhere: a hint).
setup-browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "== setup: Chromium for the dashboard's browser tests (apt-get install chromium)"; \
	  if ! command -v apt-get >/dev/null 2>&1; then \
	    echo "setup: no apt-get here: install Chromium (chromium) with the system's package manager" >&2; exit 1; fi; \
	  sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  $$sudo apt-get update -qq >/dev/null && \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; }

# The file name carries the version, so changing STATICCHECK_VERSION installs
# the new one.
$(STATICCHECK):
	@echo "== setup: staticcheck $(STATICCHECK_VERSION) into $(TOOLS)"
	@mkdir -p $(TOOLS)
	GOBIN=$(abspath $(TOOLS)) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	@mv $(TOOLS)/staticcheck $@

# The stamp is newer than pyproject.toml once its dependencies are installed, so a
# second run does nothing until pyproject.toml changes.
setup-python: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@echo "== setup: Python plugins into $(VENV) (pip install -e '.[$(PY_EXTRAS)]'; the first time takes a few minutes)"
	@[ -x $(VENV_PY) ] || $(PYTHON) -m venv $(VENV)
	$(VENV_PY) -m pip install --quiet --disable-pip-version-check -e '.[$(PY_EXTRAS)]'
	@touch $@

## build: build the dspex CLI into bin/
build: setup-go
	@echo "== build: $(DSPEX) (the first build compiles SQLite from C: a few minutes; later ones take seconds)"
	@$(GO) build -ldflags '$(LDFLAGS)' -o $(DSPEX) ./cmd/dspex

## test: lint, then every test (race detector on), then brief fuzzing
test: setup lint proto-check test-go test-python fuzz-brief

# The dashboard's browser tests fail, rather than skip, without Chromium here
# (setup installs it).
test-go:
	DSPEX_REQUIRE_BROWSER=1 $(GO) test -race -count=1 ./...

test-python: setup-python
	$(VENV_PY) -m pytest -q python/tests
	@echo "== test-python: skipped the fine-tuning plugin's local (transformers) backend test; run it with 'make test-finetune-local' (installs torch and transformers into $(FT_LOCAL_VENV))"

## test-finetune-local: the finetune plugin's local backend (transformers + torch, the
## finetune-local extra) in a virtualenv of its own, as the wheels are large
FT_LOCAL_VENV := $(BIN)/finetune-local-venv
test-finetune-local:
	@test -x $(FT_LOCAL_VENV)/bin/python || $(PYTHON) -m venv $(FT_LOCAL_VENV)
	@echo "== test-finetune-local: pip install -e '.[test,finetune-local]' into $(FT_LOCAL_VENV) (the first time downloads torch)"
	$(FT_LOCAL_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test,finetune-local]'
	DSPEX_FINETUNE_LOCAL_REQUIRED=1 $(FT_LOCAL_VENV)/bin/python -m pytest -q python/tests/test_finetune_local.py

# Each fuzz target runs for FUZZTIME on top of its seed corpus.
fuzz-brief:
	@bash scripts/fuzz.sh $(FUZZTIME)

## fuzz: longer fuzzing (FUZZTIME=60s by default here)
fuzz:
	@bash scripts/fuzz.sh $(if $(filter 3s,$(FUZZTIME)),60s,$(FUZZTIME))

## lint: go vet, staticcheck and gofmt; ruff and mypy on the Python code
lint: vet staticcheck fmt-check lint-python

vet:
	$(GO) vet ./...

staticcheck: setup-tools
	$(STATICCHECK) ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.venv/*')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

lint-python: setup-python
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV_PY) -m mypy

## proto: regenerate the Go and Python code of bridge/proto
proto: setup-go setup-python
	bash scripts/proto.sh

# proto-check: fail when the committed generated code is stale
proto-check: setup-go setup-python
	@bash scripts/proto-check.sh

## demo: set up, start the simulated LM, run the example program on bundled data, stop
demo: setup build
	@bash scripts/demo.sh $(DSPEX)

# The benchmarks' DSPy (BenchmarkVersusDSPy, BenchmarkMIPRO) runs from its own virtualenv (never .venv):
# DSPy $(DSPY_VERSION) with the Optuna version the plugins' .venv holds.
BENCH_VENV   := $(BIN)/bench-venv
BENCH_PY     := $(BENCH_VENV)/bin/python
DSPY_VERSION := 3.4.1
MIPRO_ROUNDS ?= 3

## bench: run the benchmark suite (DSPy 3.4.1 side by side) and write
## docs/PERFORMANCE.md and docs/img/bench-*.png (about 4 min on 2 cores; not
## counted: creating bin/bench-venv and .venv the first time); BENCH_OUT=FILE writes elsewhere
bench: setup-go setup-python $(BENCH_VENV)/.installed
	$(GO) run ./scripts/bench/benchreport -dspy-python $(BENCH_PY) $(if $(BENCH_OUT),-out $(BENCH_OUT))

## bench-quick: a subset with short benchtimes into a temporary directory (never
## over docs/PERFORMANCE.md unless BENCH_OUT says so): under 2 min once the
## packages are built (a clean clone's first build, cgo SQLite included, adds minutes)
bench-quick: setup-go setup-python $(BENCH_VENV)/.installed
	$(GO) run ./scripts/bench/benchreport -quick -dspy-python $(BENCH_PY) $(if $(BENCH_OUT),-out $(BENCH_OUT))

$(BENCH_VENV)/.installed: $(VENV)/.installed
	@echo "== bench: DSPy $(DSPY_VERSION) into $(BENCH_VENV) (its own virtualenv; the first time takes a few minutes)"
	@[ -x $(BENCH_PY) ] || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_PY) -m pip install --quiet --disable-pip-version-check "dspy==$(DSPY_VERSION)" \
		"optuna==$$($(VENV_PY) -c 'import optuna; print(optuna.__version__)')"
	@touch $@

## bench-mipro: MIPROv2 in DSPEx and in DSPy $(DSPY_VERSION), alternating, on one
## simulator at 50 ms (MIPRO_ROUNDS rounds; about 12 s each); DSPEx alone
## when DSPy does not install
bench-mipro: setup-go setup-python
	@if $(MAKE) --no-print-directory $(BENCH_VENV)/.installed; then py=$(abspath $(BENCH_PY)); \
	else echo "== bench-mipro: DSPy $(DSPY_VERSION) did not install: DSPEx alone"; py=; fi; \
	DSPEX_BENCH_DSPY_PYTHON=$$py $(GO) test -run '^$$' -bench '^BenchmarkMIPRO$$' -benchtime $(MIPRO_ROUNDS)x ./plugins/mipro

## golden-dspy: rerun DSPy to regenerate the MIPROv2 golden (not part of test; needs DSPy
## 3.4.1 with Optuna in DSPY_PYTHON's own virtualenv, never in .venv)
DSPY_PYTHON ?= /opt/dspy-venv/bin/python
golden-dspy: build
	DSPEX=$(abspath $(DSPEX)) $(DSPY_PYTHON) testdata/golden/mipro/gen_dspy_mipro.py

## screenshots: regenerate the dashboard screenshots in docs/img (1280x800 and
## 390x844) from a real optimization on the simulated LM
screenshots: setup-go setup-browser
	DSPEX_REQUIRE_BROWSER=1 DSPEX_DASHBOARD_SCREENSHOTS=$(abspath docs/img) \
		$(GO) test -count=1 -run '^TestOptimizeDashboardLive$$' ./cmd/dspex/internal/dashboard

clean:
	rm -rf $(BIN)
