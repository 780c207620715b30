# sigsci-keys: build, test and try the Vault plugin and hostd.
#
#   make demo   run the whole product locally against the Signal Sciences simulator
#   make test   run every test: unit tests, then the end-to-end tests with a real Vault

SHELL := /bin/bash
GO ?= go
# A semantic version from git (0.0.0-g<sha> before the first tag); Vault wants
# the plugin's with a leading v.
VERSION ?= $(shell packaging/version.sh)
BIN := bin
export CGO_ENABLED := 0

.PHONY: all build test test-unit test-e2e lint demo bench clean vault system-packages

all: build

build:
	$(GO) build -trimpath -ldflags '-s -w -X main.version=v$(VERSION)' -o $(BIN)/ ./cmd/vault-plugin-sigsci
	$(GO) build -trimpath -ldflags '-s -w -X main.version=$(VERSION)' -o $(BIN)/ ./cmd/hostd ./cmd/sigsci-sim

## test: everything CI runs.
test: system-packages lint test-unit test-e2e

## system-packages: install the Debian packages the tests and the demo need
## (as root; otherwise print the apt-get line and stop). The list is in the script.
system-packages:
	@./e2e/system-packages.sh

# staticcheck is pinned by the tool directive in go.mod; `go tool -n` builds it
# once (cached) and prints its path, so the other modules run the same binary.
STATICCHECK = $$($(GO) tool -n staticcheck)

## vault: build the real Vault server and CLI for the tests (cached per the pins in
## e2e/vault; the first build takes ~15 min and streams its progress).
vault:
	cd e2e && $(GO) run ./cmd/vaultbin

## test-unit: the main module's tests. Tests that need a real Vault get the binary
## that `make vault` builds.
test-unit:
	export SIGSCI_VAULT_BIN=$$(cd e2e && $(GO) run ./cmd/vaultbin) && \
	  CGO_ENABLED=1 $(GO) test -race -count=1 ./...
	$(MAKE) test-packaging

## test-e2e: the end-to-end tests with the real Vault, systemd and the simulator.
## The raft cluster stories (e2e/cluster: three Vault servers, timed elections)
## run after the others, on their own; a failure in either fails the target.
test-e2e:
	set -o pipefail; { cd e2e && $(GO) run ./cmd/vaultbin >/dev/null && rc=0 && \
	  { $(GO) test -count=1 -timeout 60m -v $$($(GO) list ./... | grep -v '/cluster$$') || rc=1; } && \
	  { $(GO) test -count=1 -timeout 30m -v ./cluster/... || rc=1; } && exit $$rc; } 2>&1 | tee e2e-test.log

## demo: the main job, locally, with no Signal Sciences account.
## It checks what it needs (root, systemd) before building Vault.
demo: system-packages build
	GO=$(GO) ./e2e/demo.sh

## bench: hostd side by side with Vault Agent, printed as a table (a few minutes; flags in BENCH_FLAGS).
bench:
	cd e2e && $(GO) run ./cmd/bench $(BENCH_FLAGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	cd e2e && $(GO) vet ./...
	cd packaging && $(GO) vet ./...
	sc=$(STATICCHECK) && $$sc ./... && (cd e2e && $$sc ./...) && (cd packaging && $$sc ./...)

clean:
	rm -rf $(BIN) e2e-test.log

## release: build for linux/amd64 and package, into $(DIST):
##   vault-plugin-sigsci.tar.gz (the plugin binary alone), vault-plugin-sigsci,
##   hostd's .deb and .rpm (nfpm, packaging/nfpm.yaml) and SHA256SUMS.
DIST ?= dist
RELEASE_VERSION ?= $(shell packaging/version.sh)
RELEASE_LDFLAGS = -s -w -X main.version=$(RELEASE_VERSION)
# Vault plugin versions carry a leading v (v1.2.3), as Vault's own do.
RELEASE_PLUGIN_LDFLAGS = -s -w -X main.version=v$(RELEASE_VERSION)
RELEASE_PLUGIN_PKG ?= ./cmd/vault-plugin-sigsci
RELEASE_HOSTD_PKG ?= ./cmd/hostd
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || date +%s)
release_build = $(DIST)/.build

.PHONY: release
release:
	@case "$(RELEASE_VERSION)" in [0-9]*.[0-9]*.[0-9]*) ;; *) echo "release: bad version '$(RELEASE_VERSION)'"; exit 1;; esac
	@echo "release $(RELEASE_VERSION) into $(DIST)"
	rm -rf $(release_build) && mkdir -p $(release_build)
	GOOS=linux GOARCH=amd64 CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(RELEASE_PLUGIN_LDFLAGS)' \
	  -o $(release_build)/vault-plugin-sigsci $(RELEASE_PLUGIN_PKG)
	GOOS=linux GOARCH=amd64 CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(RELEASE_LDFLAGS)' \
	  -o $(release_build)/hostd $(RELEASE_HOSTD_PKG)
	rm -f $(DIST)/vault-plugin-sigsci $(DIST)/vault-plugin-sigsci.tar.gz $(DIST)/hostd_*.deb $(DIST)/hostd-*.rpm $(DIST)/SHA256SUMS
	cp $(release_build)/vault-plugin-sigsci $(DIST)/vault-plugin-sigsci
	set -o pipefail; tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@$(SOURCE_DATE_EPOCH) \
	  -C $(release_build) -cf - vault-plugin-sigsci | gzip -n -9 > $(DIST)/vault-plugin-sigsci.tar.gz
	HOSTD_BIN=$(abspath $(release_build)/hostd) SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) \
	  $(GO) -C packaging run ./nfpm -config nfpm.yaml -target $(abspath $(DIST)) -version $(RELEASE_VERSION)
	cd $(DIST) && sha256sum vault-plugin-sigsci.tar.gz vault-plugin-sigsci hostd_*.deb hostd-*.rpm > SHA256SUMS
	rm -rf $(release_build)
	@cd $(DIST) && ls -l vault-plugin-sigsci.tar.gz vault-plugin-sigsci hostd_*.deb hostd-*.rpm SHA256SUMS

## test-packaging: build a release into a temporary directory and test it: the
## tarball, SHA256SUMS, the .deb and .rpm contents and, as root, installing,
## upgrading and purging the .deb on this machine (packaging/, its own module).
.PHONY: test-packaging
test-packaging:
	cd packaging && $(GO) test -count=1 -timeout 30m ./...
