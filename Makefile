# gproxy: build, test, demo, benchmark. Every target is bounded in time.
GO      ?= go
BIN     ?= bin
GOFILES  = $(shell find . -name '*.go' -not -path './.git/*')

.PHONY: all build test vet fmt-check fuzz attacks idle-rss demo bench bench-tls e2e h2spec clean install

all: build

## build: the gproxy binary in bin/
build:
	$(GO) build -o $(BIN)/gproxy ./cmd/gproxy

## test: vet, gofmt check and every test with the race detector
test: vet fmt-check
	$(GO) test -race -timeout 8m ./...
	$(MAKE) fuzz

## fuzz: each codec fuzz target for FUZZTIME (HTTP/2 frames, HPACK re-encoding)
FUZZTIME ?= 5s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzFrames$$' -fuzztime $(FUZZTIME) ./proxy/h2
	$(GO) test -run '^$$' -fuzz '^FuzzHeaderReencoding$$' -fuzztime $(FUZZTIME) ./proxy

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $(GOFILES)); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

## demo: two backends, gproxy with the article's nginx.conf, 1,000 calls on one connection
demo:
	timeout 180 examples/demo.sh

## e2e: only the end-to-end tests, verbose (PROXY=nginx runs them against nginx)
e2e:
	$(GO) test -race -timeout 8m -v -count=1 ./proxy/e2e/ $(if $(PROXY),-args -e2e.proxy=$(PROXY))

## h2spec: the h2spec conformance run alone, with the counts in the log
h2spec:
	$(GO) test -timeout 5m -v -count=1 -run 'TestH2Spec' ./proxy/e2e/ $(if $(PROXY),-args -e2e.proxy=$(PROXY))

## attacks: issue 15's attacks against the gproxy binary, nginx and HAProxy, interleaved, 3 rounds; medians per attack and proxy
attacks:
	timeout -k 10 900 examples/bench/attacks.sh

## idle-rss: RSS per idle client connection (one gRPC call each, 2,000 connections) of the gproxy binary, nginx and HAProxy
idle-rss:
	$(GO) test -count=1 -timeout 5m -v -run 'TestIdleRSS' ./proxy/e2e/ -args -e2e.idlerss=gproxy-process,nginx,haproxy | grep 'IDLE-ROW'

## bench: gproxy vs nginx vs HAProxy on loopback, cleartext then TLS, about 3 minutes; tables in bench-out/
bench:
	timeout -k 10 300 examples/bench/bench.sh
	timeout -k 10 200 examples/bench/tls.sh

## bench-tls: the TLS part of bench alone (ECDSA and RSA, RPS and handshakes/s)
bench-tls:
	timeout -k 10 200 examples/bench/tls.sh

## install: binary, systemd unit and logrotate snippet (PREFIX=/usr/local, DESTDIR for packaging)
PREFIX  ?= /usr/local
DESTDIR ?=
install: build
	install -D -m 0755 $(BIN)/gproxy $(DESTDIR)$(PREFIX)/sbin/gproxy
	install -d -m 0755 $(DESTDIR)/etc/gproxy/logs
	install -D -m 0644 examples/systemd/gproxy.service $(DESTDIR)/etc/systemd/system/gproxy.service
	install -D -m 0644 examples/logrotate/gproxy $(DESTDIR)/etc/logrotate.d/gproxy
	install -D -m 0644 README.md $(DESTDIR)$(PREFIX)/share/doc/gproxy/README.md
	@echo "installed; the configuration is read from /etc/nginx/nginx.conf (gproxy -t to check it)"

clean:
	rm -rf $(BIN) bench-out
