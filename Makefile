# sigsci-keys: build, test and try the Vault plugin and hostd.
#
#   make demo   run the whole product locally against the Signal Sciences simulator
#   make test   run every test: unit tests, then the end-to-end tests with a real Vault

SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null | sed 's/^v//' || echo 0.0.0)
BIN := bin
LDFLAGS := -s -w -X main.version=$(VERSION)
export CGO_ENABLED := 0

.PHONY: all build test test-unit test-e2e lint demo clean

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

## test: everything CI runs.
test: lint test-unit test-e2e

test-unit:
	CGO_ENABLED=1 $(GO) test -race -count=1 ./...

test-e2e:
	cd e2e && $(GO) test -count=1 -timeout 60m -v ./... 2>&1 | tee ../e2e-test.log; exit $${PIPESTATUS[0]}

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	cd e2e && $(GO) vet ./...
	@if command -v staticcheck >/dev/null; then staticcheck ./... && (cd e2e && staticcheck ./...); \
	 elif [ -x "$$($(GO) env GOPATH)/bin/staticcheck" ]; then "$$($(GO) env GOPATH)/bin/staticcheck" ./... && (cd e2e && "$$($(GO) env GOPATH)/bin/staticcheck" ./...); \
	 else echo "staticcheck not installed: go install honnef.co/go/tools/cmd/staticcheck@latest"; exit 1; fi

clean:
	rm -rf $(BIN) e2e-test.log
