# DSPEx — see README.md. Every target works on a fresh machine: `make setup`
# installs what is missing and is safe to run again.

GO        ?= go
BIN       := bin
DSPEX     := $(BIN)/dspex
GOFLAGS   ?=
FUZZTIME  ?= 3s
export CGO_ENABLED := 1

.PHONY: all setup setup-go build test test-go fuzz-brief fuzz lint vet fmt-check demo bench clean

all: build

## setup: install everything a fresh machine lacks (idempotent)
setup: setup-go

setup-go:
	$(GO) mod download

## build: build the dspex CLI into bin/
build: setup-go
	$(GO) build -o $(DSPEX) ./cmd/dspex

## test: lint, then every test (race detector on), then brief fuzzing
test: setup lint test-go fuzz-brief

test-go:
	$(GO) test -race -count=1 ./...

# Each fuzz target runs for FUZZTIME on top of its seed corpus.
fuzz-brief:
	@bash scripts/fuzz.sh $(FUZZTIME)

## fuzz: longer fuzzing (FUZZTIME=60s by default here)
fuzz:
	@bash scripts/fuzz.sh $(if $(filter 3s,$(FUZZTIME)),60s,$(FUZZTIME))

## lint: go vet and gofmt
lint: vet fmt-check

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.venv/*')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## demo: start the simulated LM, run the example program on bundled data, stop
demo: build
	@bash scripts/demo.sh $(DSPEX)

## bench: run the Go benchmarks and print their figures
bench: setup-go
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf $(BIN)
