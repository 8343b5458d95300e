# webhookd: make help lists the targets.
GO      ?= go
BIN     ?= bin
ARGS    ?=
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

.DEFAULT_GOAL := help
.PHONY: help deps build run test lint bench fuzz clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-8s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

deps: ## download the Go modules (needs Go 1.26 and a C compiler for -race)
	$(GO) mod download
	$(GO) version

build: ## build bin/webhookd and bin/webhookctl
	$(GO) build -o $(BIN)/ ./cmd/webhookd ./cmd/webhookctl

run: build ## run webhookd with its embedded NATS, data in ./data (extra flags: make run ARGS="--allow-targets 127.0.0.0/8")
	./$(BIN)/webhookd --log-format console $(ARGS)

test: ## go vet, then every test with the race detector
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 15m ./...

lint: ## gofmt check, go vet, staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

bench: ## benchmarks: signing, matching, and publish-to-receipt latency through the whole pipeline
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./...

fuzz: ## run each fuzz target for 30s
	$(GO) test -run '^$$' -fuzz FuzzMatchPattern -fuzztime 30s ./subscriptions
	$(GO) test -run '^$$' -fuzz FuzzParseBackoff -fuzztime 30s ./config
	$(GO) test -run '^$$' -fuzz FuzzDecodeSecret -fuzztime 30s ./delivery/signature

clean: ## remove build outputs (not ./data)
	rm -rf $(BIN)
