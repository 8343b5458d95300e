# webhookd: make help lists the targets.
GO      ?= go
BIN     ?= bin
ARGS    ?=
FUZZTIME  ?= 60s
FUZZFLAGS ?=
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

.DEFAULT_GOAL := help
PREFIX  ?= $(shell $(GO) env GOPATH)
# -buildvcs=auto stamps the commit into the binaries (--version) even where
# GOFLAGS turns it off; outside a git checkout nothing is stamped.
BUILDFLAGS ?= -buildvcs=auto
.PHONY: help deps build install run test lint docs bench fuzz clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-8s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# .ci/tools.txt lists the programs the tests need besides Go: .ci/run installs
# them, make deps names the missing ones.
# axe-core, the accessibility checker the browser test runs in chromium, is
# installed with npm into .cache/axe (not committed).
AXE_CORE ?= axe-core@4.14.1
deps: ## download the Go modules and axe-core (npm); name the test tools missing (.ci/tools.txt: gcc, chromium, python3, node, npm, promtool)
	$(GO) mod download
	$(GO) version
	@if command -v npm >/dev/null; then \
		npm install --prefix .cache/axe --no-save --no-audit --no-fund --silent $(AXE_CORE) && echo "make deps: $(AXE_CORE) in .cache/axe"; \
	fi
	@missing=$$(grep -v '^#' .ci/tools.txt | while read -r cmd pkg _; do \
		command -v $$cmd >/dev/null || printf ' %s' $$pkg; done); \
	if [ -n "$$missing" ]; then \
		echo "make deps: the tests also need:$$missing (Debian: sudo apt-get install -y$$missing; .ci/run installs them)"; \
	fi

build: ## build bin/webhookd and bin/webhookctl
	$(GO) build $(BUILDFLAGS) -o $(BIN)/ ./cmd/webhookd ./cmd/webhookctl

install: ## install webhookd and webhookctl into $(go env GOPATH)/bin, or PREFIX/bin (make install PREFIX=/usr/local)
	mkdir -p $(PREFIX)/bin
	$(GO) build $(BUILDFLAGS) -o $(PREFIX)/bin/ ./cmd/webhookd ./cmd/webhookctl
	@echo "installed $(PREFIX)/bin/webhookd and $(PREFIX)/bin/webhookctl"

# Local development: console logs on a terminal (JSON when stdout is a pipe or
# a file, for log collectors), and deliveries to loopback receivers allowed
# (RUN_FLAGS), which webhookd's own default refuses.
RUN_FLAGS ?= --allow-targets 127.0.0.0/8
run: build ## run webhookd for local development: embedded NATS, data in ./data, loopback receivers allowed (more flags: ARGS="...")
	@if test -t 1; then format=console; else format=json; fi; \
	echo "make run: local development: deliveries to loopback receivers are allowed ($(RUN_FLAGS)); webhookd's own default refuses them"; \
	echo $(BIN)/webhookd --log-format $$format $(RUN_FLAGS) $(ARGS); \
	exec $(BIN)/webhookd --log-format $$format $(RUN_FLAGS) $(ARGS)

test: ## go vet, then every test with the race detector
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 15m ./...

lint: ## gofmt check, go vet, staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

docs: ## regenerate docs/configuration.md from webhookd's flags (a test checks it is up to date)
	$(GO) test -count=1 -run '^TestConfigurationDocIsUpToDate$$' ./config -update

bench: ## benchmarks: signing, matching, and publish-to-receipt latency through the whole pipeline
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./...

# Not part of make test: it takes minutes and starts real processes (it
# mounts a tmpfs for the full disk, so it needs root; without root that
# fault is skipped, and fails under CI).
.PHONY: faults
faults: ## fault suite: kill -9, restarts, NATS leader loss, full disk, damaged bbolt file, hanging receiver, connection flood; prints a Markdown table
	WEBHOOKD_FAULTS=1 $(GO) test -count=1 -v -timeout 10m -run '^TestFaults$$' ./internal/faults

.PHONY: bench-load
bench-load: build ## load test: webhookd as a child process, loopback receivers; results in bench-results/ (ARGS="--fanout 10 --duration 60s", see --help)
	$(GO) build -o $(BIN)/ ./cmd/webhook-bench
	./$(BIN)/webhook-bench --webhookd $(BIN)/webhookd $(ARGS)

# The fuzzer also minimizes each input that finds new coverage, up to 60s by
# default, with no execs meanwhile: -fuzzminimizetime 5s keeps it fuzzing.
fuzz: ## run every fuzz target of every package in turn, FUZZTIME each (FUZZFLAGS="-parallel 2" on a shared machine)
	@set -e; for pkg in $$($(GO) list ./...); do \
		for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "== $$t ($$pkg)"; \
			$(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 5s $(FUZZFLAGS) $$pkg; \
		done; \
	done

clean: ## remove build outputs (not ./data)
	rm -rf $(BIN)
