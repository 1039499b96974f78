# Build and test targets of dls. CI runs `make test` (.ci/run).

GO ?= go
# go test's limit per package binary; the e2e package takes about a minute.
TEST_TIMEOUT ?= 10m

.PHONY: test fmt-check vet

# test: formatting, go vet, then every test with the race detector. The e2e tests need
# root, containerd, runc and a running Docker daemon; they fail, not skip, without them.
test: fmt-check vet
	$(GO) test -race -timeout $(TEST_TIMEOUT) ./...

# fmt-check fails listing every file gofmt would change.
fmt-check:
	@files="$$(gofmt -l .)"; \
	if [ -n "$$files" ]; then echo "gofmt needed:"; echo "$$files"; exit 1; fi

vet:
	$(GO) vet ./...

.PHONY: build demo

# build writes the dls binary to bin/dls, with the version from git when there is one.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o bin/dls ./cmd/dls

# demo runs the main job on this machine, no internet needed: a real registry on loopback
# serves images named after the k3s image list; dls fetches them through a registries.yaml
# mirror, assembles the archive, and docker loads and runs it when a daemon is reachable.
demo: build
	$(GO) run ./integration/demo -dls bin/dls -out demo

.PHONY: bench

# bench runs the benchmark suite (not part of test): Go benchmarks of cache, resume and
# assemble, then dls against crane and a floor on a loopback registry, direct, through a
# WAN-like and a lossy proxy. BENCH_SIZE=2G for the full corpus; see integration/bench/run.sh.
BENCH_SIZE ?= 500M
bench:
	BENCH_SIZE=$(BENCH_SIZE) GO=$(GO) bash integration/bench/run.sh
