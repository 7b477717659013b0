# cais: two commands set everything up on a fresh Debian 12 machine as root.
#   make up    install what is needed, build, start a single-node platform
#   make test  install what is needed, run the whole suite
SHELL := /bin/bash
GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
export PATH := $(dir $(GO)):$(PATH)
DATA_DIR ?= /var/lib/cais
LOG_DIR ?= /var/log/cais
CAISD_FLAGS ?=
APT_PACKAGES := etcd-server etcd-client fuse3 attr e2fsprogs util-linux procps iproute2 curl ca-certificates runc busybox-static iptables debootstrap
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/cais-platform/cais/daemon.Version=$(VERSION)

.PHONY: all deps build up down test unit e2e lint fuzz clean

all: build

# deps installs the Debian packages the platform and its tests use. It is
# idempotent and quiet when everything is there already.
deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@# Debian's etcd-server starts a system etcd on 127.0.0.1:2379 where systemd runs; cais runs its own.
	@systemctl disable --now etcd >/dev/null 2>&1 || true
	@command -v $(GO) >/dev/null || { echo "Go is not installed (expected at /usr/local/go/bin/go)"; exit 1; }

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/ ./cmd/caisd ./cmd/cais

up: deps build
	@scripts/up.sh "$(DATA_DIR)" "$(LOG_DIR)" $(CAISD_FLAGS)

down:
	@scripts/down.sh "$(DATA_DIR)"

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

unit:
	$(GO) test -count=1 -race $$($(GO) list ./... | grep -v /test/)

e2e: build
	CAIS_BIN=$(CURDIR)/bin $(GO) test -count=1 -timeout 20m ./test/...

test: deps build lint
	@start=$$(date +%s); \
	CAIS_BIN=$(CURDIR)/bin $(GO) test -count=1 -timeout 25m ./...; rc=$$?; \
	echo "make test: exit $$rc in $$(( $$(date +%s) - start ))s"; exit $$rc

# bench measures cais mounts against GlusterFS 10.3 with the same brick
# layouts, a go-fuse passthrough (the FUSE floor) and the local disk, and
# writes the table to bench-results/ (issue 3, point 7; README, Benchmarks).
# BENCH_ARGS="-quick" is a run of a few minutes; go run ./test/bench -h.
BENCH_ARGS ?=
BENCH_PACKAGES := glusterfs-server glusterfs-client attr fuse3 e2fsprogs mount
.PHONY: bench bench-deps
bench-deps:
	@missing=""; for p in $(BENCH_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null || exit 1; \
		: "where systemd started the packaged glusterd on every address, the bench runs its own instead"; \
		systemctl disable --now glusterd >/dev/null 2>&1 || true; \
	fi

bench: bench-deps build
	$(GO) run ./test/bench -bin $(CURDIR)/bin -out $(CURDIR)/bench-results $(BENCH_ARGS)
	$(MAKE) bench-engine

# bench-engine times `docker run --rm busybox true` through caisd against
# `runc run` of the same bundle, starts 50 containers at once and reads
# caisd's memory (issue 4, point 7; README, Containers: security and
# performance). go run ./test/bench/engine -h.
BENCH_ENGINE_ARGS ?=
.PHONY: bench-engine
bench-engine: deps build
	$(GO) run ./test/bench/engine -bin $(CURDIR)/bin -out $(CURDIR)/bench-results/engine.txt $(BENCH_ENGINE_ARGS)

# fuzz runs each fuzz target for FUZZTIME (the seed corpora run in make test).
FUZZTIME ?= 30s
fuzz:
	$(GO) test ./rpc -run '^$$' -fuzz FuzzDecodeBody -fuzztime $(FUZZTIME)
	$(GO) test ./rpc -run '^$$' -fuzz FuzzReadFrame -fuzztime $(FUZZTIME)
	$(GO) test ./volume -run '^$$' -fuzz FuzzParseCreateArgs -fuzztime $(FUZZTIME)
	$(GO) test ./pool -run '^$$' -fuzz FuzzParseToken -fuzztime $(FUZZTIME)
	$(GO) test ./volume -run '^$$' -fuzz FuzzCreateRequestJSON -fuzztime $(FUZZTIME)
	$(GO) test ./fop -run '^$$' -fuzz FuzzUnmarshal -fuzztime $(FUZZTIME)
	$(GO) test ./fop -run '^$$' -fuzz FuzzDecodeChangelog -fuzztime $(FUZZTIME)
	$(GO) test ./fop -run '^$$' -fuzz FuzzSplitParentAttr -fuzztime $(FUZZTIME)
	$(GO) test ./fop -run '^$$' -fuzz FuzzSplitLocalFD -fuzztime $(FUZZTIME)
	$(GO) test ./distribute -run '^$$' -fuzz FuzzDecodeRange -fuzztime $(FUZZTIME)
	$(GO) test ./image/reference -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME)
	$(GO) test ./image/layer -run '^$$' -fuzz '^FuzzUnpack$$' -fuzztime $(FUZZTIME)
	$(GO) test ./image/layer -run '^$$' -fuzz FuzzUnpackEntries -fuzztime $(FUZZTIME)
	$(GO) test ./image/layer -run '^$$' -fuzz FuzzCheck -fuzztime $(FUZZTIME)
	$(GO) test ./dockerfile -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME)
	$(GO) test ./image/store -run '^$$' -fuzz FuzzLoad -fuzztime $(FUZZTIME)
	$(GO) test ./network -run '^$$' -fuzz FuzzAnswer -fuzztime $(FUZZTIME)
	$(GO) test ./network -run '^$$' -fuzz FuzzPortRequests -fuzztime $(FUZZTIME)
	$(GO) test ./engine/mux -run '^$$' -fuzz FuzzReadFrame -fuzztime $(FUZZTIME)
	$(GO) test ./engine/jsonlog -run '^$$' -fuzz FuzzParseEntry -fuzztime $(FUZZTIME)
	$(GO) test ./dockerapi -run '^$$' -fuzz FuzzDecodeCreate -fuzztime $(FUZZTIME)
	$(GO) test ./dockerapi -run '^$$' -fuzz FuzzParseFilters -fuzztime $(FUZZTIME)
	$(GO) test ./engine -run '^$$' -fuzz FuzzParseSeccompProfile -fuzztime $(FUZZTIME)
	$(GO) test ./engine/volumes -run '^$$' -fuzz FuzzPlan -fuzztime $(FUZZTIME)
	$(GO) test ./engine/containerfs -run '^$$' -fuzz FuzzArchivePath -fuzztime $(FUZZTIME)
	$(GO) test ./dockerapi -run '^$$' -fuzz FuzzDecodeBuildOptions -fuzztime $(FUZZTIME)
	$(GO) test ./dockerapi -run '^$$' -fuzz FuzzDecodeRegistryConfig -fuzztime $(FUZZTIME)
	$(GO) test ./builder -run '^$$' -fuzz FuzzParseIgnore -fuzztime $(FUZZTIME)
	$(GO) test ./builder -run '^$$' -fuzz FuzzCheckContextEntry -fuzztime $(FUZZTIME)
	$(GO) test ./builder -run '^$$' -fuzz FuzzApplyChanges -fuzztime $(FUZZTIME)
	$(GO) test ./registry -run '^$$' -fuzz FuzzParseContentRange -fuzztime $(FUZZTIME)
	$(GO) test ./registry -run '^$$' -fuzz FuzzValidName -fuzztime $(FUZZTIME)
	$(GO) test ./registry -run '^$$' -fuzz FuzzParseManifest -fuzztime $(FUZZTIME)
	$(GO) test ./registry -run '^$$' -fuzz FuzzParsePath -fuzztime $(FUZZTIME)
	$(GO) test ./image/distribution -run '^$$' -fuzz FuzzParseChallenges -fuzztime $(FUZZTIME)
	$(GO) test ./image/distribution -run '^$$' -fuzz FuzzDecodeAuthHeader -fuzztime $(FUZZTIME)
	$(GO) test ./image/distribution -run '^$$' -fuzz FuzzParseManifest -fuzztime $(FUZZTIME)
	$(GO) test ./unixsock -run '^$$' -fuzz FuzzPassedFDs -fuzztime $(FUZZTIME)

# conformance runs the OCI distribution-spec conformance suite (fetched
# through the Go module proxy into a temporary module, never committed)
# against the registry, all four workflows (issue 5, point 4; README,
# Registry).
.PHONY: conformance
conformance:
	GO=$(GO) scripts/conformance.sh

# bench-registry pushes and pulls a 200 MB, 20-layer image against the
# cais registry and the reference registry (distribution/distribution,
# built from the Go module proxy at run time) on the same disk, and copies
# the same bytes with cp (issue 5, point 5; README, Registry).
.PHONY: bench-registry
bench-registry:
	GO=$(GO) scripts/registry-bench.sh $(CURDIR)/bench-results/registry.txt

clean:
	rm -rf bin
