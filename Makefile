# Astra responder. `make run` serves on the embedded defaults; `make test` is what CI runs.
GO       ?= go
PKGS     := ./...
# A count, not a duration: a duration's deadline can fail a clean run with
# "context deadline exceeded" (a race in Go's fuzz coordinator, go.dev/issue/75804).
FUZZTIME ?= 20000x
# Minimizing each new interesting input may otherwise take up to a minute.

.PHONY: run build test test-short fuzz bench lint generate check-generated

run:
	$(GO) run ./cmd/astra serve

build:
	$(GO) build -o bin/astra ./cmd/astra

# The full suite, plus short runs of every fuzz target. Tests that need
# Chromium or a real MongoDB skip with a reason when those are absent
# (outside CI); .ci/run installs Chromium.
test: lint check-generated
	$(GO) test -race -count=1 -timeout 25m $(PKGS)
	$(GO) test -count=1 -run '^TestEveryDeltaBeforeItsAnswer$$' ./internal/dispatch
	$(MAKE) fuzz

test-short:
	$(GO) test -short -count=1 $(PKGS)

fuzz:
	@for f in $$(grep -rl --include='*_test.go' '^func Fuzz' internal cmd); do \
	  for t in $$(grep -o '^func Fuzz[A-Za-z0-9_]*' $$f | sed 's/^func //'); do \
	    echo "fuzz $$t in ./$$(dirname $$f) for $(FUZZTIME)"; \
	    $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 500x ./$$(dirname $$f) || exit 1; \
	  done; \
	done

# Benchmarks print the figures docs/performance.md records.
bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s -timeout 30m ./internal/...
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./cmd/astra

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

generate:
	$(GO) generate ./...

# Fails when committed generated code differs from what the generator makes.
check-generated:
	$(GO) test -count=1 -run 'TestGenerated' ./internal/julep/...
