# Gatehouse Makefile.
#
#   make demo    build Gatehouse and start the local demo setup
#   make test    install the tools, lint, run unit and end-to-end tests
#
# Other targets: deps, lint, unit, e2e, build, clean. The tools the tests need
# (pebble, staticcheck, govulncheck, oauth2-proxy, dex) live in .tools/bin,
# which every target puts first on PATH; Debian packages come from apt.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

TOOLS_BIN := $(CURDIR)/.tools/bin
export PATH := $(TOOLS_BIN):$(PATH)
# govulncheck's database, built by install-deps.sh from golang.org/x/vulndb.
VULNDB := $(CURDIR)/.tools/vulndb

# Go 1.26.8 (go.mod's go line) has known vulnerabilities in crypto/x509,
# crypto/tls, net/http, html/template and mime/multipart that govulncheck
# reports as reachable; 1.26.10 fixes them all. Build and test with at least
# that toolchain (the go command fetches it through the module proxy).
# go.mod's `toolchain go1.26.10` line says the same, but Debian's Go setup
# here ships GOTOOLCHAIN=local in go.env, which ignores that line.
export GOTOOLCHAIN ?= go1.26.10+auto

GO ?= go
# Packages whose tests run in `make unit`: everything except the end-to-end
# tests, which need the real binary and the tools.
UNIT_PKGS = $$($(GO) list ./... | grep -v '/e2e')
E2E_PKGS = ./e2e/...
UNIT_TIMEOUT ?= 10m
E2E_TIMEOUT ?= 20m

.PHONY: help
help:
	@echo "make demo    build Gatehouse and start the local demo (Ctrl-C stops it)"
	@echo "make test    install tools and run lint, unit and end-to-end tests"
	@echo "make deps | lint | unit | e2e | build | clean"

## deps: Debian packages and Go tools (idempotent; needs root for apt).
.PHONY: deps
deps:
	bash scripts/install-deps.sh

## lint: gofmt, go vet, staticcheck, govulncheck. All four run; it fails if
## any of them finds something.
.PHONY: lint
lint: deps
	@failed=""; \
	echo "lint: gofmt -l"; \
	files=$$(find . -name '*.go' -not -path './.tools/*' -not -path './.git/*' -print0 | xargs -0 gofmt -l); \
	if [ -n "$$files" ]; then echo "gofmt: these files need formatting:"; echo "$$files"; failed="$$failed gofmt"; fi; \
	echo "lint: go vet ./..."; $(GO) vet ./... || failed="$$failed vet"; \
	echo "lint: staticcheck ./..."; staticcheck ./... || failed="$$failed staticcheck"; \
	echo "lint: govulncheck ./..."; govulncheck -db file://$(VULNDB) ./... || failed="$$failed govulncheck"; \
	if [ -n "$$failed" ]; then echo "lint: FAILED:$$failed"; exit 1; fi

## unit: every package's tests with the race detector, except e2e.
.PHONY: unit
unit:
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout $(UNIT_TIMEOUT) $(UNIT_PKGS)

## e2e: end-to-end tests against the real binary, Dex, OpenSSH, Chromium,
## Redis, Pebble and the Debian TLS scanners. Needs `make deps` first.
.PHONY: e2e
e2e: deps
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout $(E2E_TIMEOUT) $(E2E_PKGS)

## fuzz: every fuzz target for FUZZTIME (default 4s) beyond its seed corpus.
.PHONY: fuzz
fuzz:
	bash scripts/fuzz.sh

## test: deps, then lint, unit, fuzz and e2e. All four run even when one fails, so
## one run reports every failure; the exit status is non-zero if any failed.
.PHONY: test
test: deps
	@start=$$(date +%s); failed=""; \
	$(MAKE) --no-print-directory lint || failed="$$failed lint"; \
	$(MAKE) --no-print-directory unit || failed="$$failed unit"; \
	$(MAKE) --no-print-directory fuzz || failed="$$failed fuzz"; \
	$(MAKE) --no-print-directory e2e || failed="$$failed e2e"; \
	echo "make test: $$(( $$(date +%s) - start ))s"; \
	if [ -n "$$failed" ]; then echo "make test: FAILED:$$failed"; exit 1; fi; \
	echo "make test: all passed"

## build: a static ./gatehouse binary.
.PHONY: build
build: player
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o gatehouse ./cmd/gatehouse

## demo: Dex with a demo user, the demo web app, an sshd target and Gatehouse
## (configs/demo.yaml, self-signed TLS, embedded store), all on loopback with
## free ports and a temporary directory; prints what to open. Ctrl-C stops it.
.PHONY: demo
demo: player
	@bash scripts/demo.sh

## player: the asciinema player bundle the reviewer console embeds (npm).
.PHONY: player
player:
	@bash scripts/player.sh

## bench-http: Gatehouse's HTTPS door beside nginx on loopback, 3 interleaved
## rounds (medians): HTTP/1.1 with wrk (also the upstream directly and
## oauth2-proxy), HTTP/2 with h2load, 1 MiB down and up, RSS per idle
## connection (10,000 held), 1,000 active connections, CPU per request at
## 1-1000 connections, then a CPU profile; req/s, p99, CPU per request,
## ratios to nginx and issue 11's targets as ok/MISS lines. Fails on any
## answer that is not 2xx/3xx, printing the statuses and the server's log
## lines. About 12 minutes; BENCH_HTTP_FLAGS adds flags (e.g. -rounds 5
## -d 20s -keep, -modes h1,h2).
.PHONY: bench-http
bench-http: deps build
	$(GO) build -o .tools/bench-http ./bench/http
	.tools/bench-http -gatehouse ./gatehouse $(BENCH_HTTP_FLAGS)

## bench-ssh: the SSH door against direct OpenSSH and OpenSSH's ProxyJump
## (bench/ssh/README.md): idle (1,000 idle shells held through Gatehouse: RSS
## per session, setup p99 while held), classic (1 GiB through `cat > /dev/null`
## per path, 3 interleaved rounds: MiB/s, CPU-s/GiB of every process, setup
## with hyperfine) and many (1, 10 and 100 sessions at once, 64 MiB each: the
## cost growth table); prints issue 11's targets as ok/MISS lines. Needs root
## (cgroups, the sshd test user). BENCH_SSH_FLAGS adds flags (e.g. -modes
## classic -rounds 5 -size 536870912, -idle 200, -conns 1,10 -keep).
.PHONY: bench-ssh
bench-ssh: deps build
	$(GO) build -o .tools/bench-ssh ./bench/ssh
	.tools/bench-ssh -gatehouse ./gatehouse $(BENCH_SSH_FLAGS)

## bench-ha: issue 8's load test, on loopback: one redis-server, two
## replicas sharing it (master key file, recordings directory), an HTTP
## upstream and an sshd target; 20 s of HTTPS requests (32 keep-alive
## clients, one session each) and 20 s of SSH sessions (8 clients) spread
## over both replicas, plus one request per never-seen session (the cost
## of a cookie-cache miss). Prints req/s, sessions/s, p50/p99, errors by
## kind (exit 1 on any) and Redis calls per request and per session from
## INFO commandstats. Builds ./cmd/gatehouse itself. Needs root (the sshd
## test user). About 1 minute; BENCH_HA_FLAGS adds flags (e.g. -d 30s
## -ssh-conc 16 -keep).
.PHONY: bench-ha
bench-ha: deps
	$(GO) build -o .tools/bench-ha ./bench/ha
	.tools/bench-ha $(BENCH_HA_FLAGS)

## bench: bench-http, then bench-ssh (both run even when one fails).
.PHONY: bench
bench:
	@failed=""; \
	$(MAKE) --no-print-directory bench-http || failed="$$failed bench-http"; \
	$(MAKE) --no-print-directory bench-ssh || failed="$$failed bench-ssh"; \
	if [ -n "$$failed" ]; then echo "make bench: FAILED:$$failed"; exit 1; fi

.PHONY: clean
clean:
	rm -f gatehouse
