#!/usr/bin/env bash
# run.sh runs the dls benchmark suite (make bench): the Go benchmarks of cache, resume and
# assemble, then the side-by-side bench program against a corpus on a loopback registry.
#
# Environment:
#   BENCH_SIZE   distinct bytes of the corpus: 500M (default) or e.g. 2G for the full run
#   BENCH_GO     0 skips the Go benchmarks
#   BENCH_OUT    directory for the report and logs (default /tmp/dls-bench-results)
#   BENCH_ARGS   extra flags for the bench program (see go run ./integration/bench -h)
#   CRANE        a crane binary to use instead of installing crane v0.22.1
# The corpus and every output live under a fresh /tmp/dls-bench-* directory, removed at
# the end; only the report and the commands' log stay in BENCH_OUT.
set -euo pipefail

cd "$(dirname "$0")/../.."

# Peak RSS comes from GNU time: a child's own rusage would report the bench's RSS (Go
# starts children with vfork), so without GNU time the bench has no RSS figures at all.
time_version=$(/usr/bin/time --version 2>&1 || true)
if [[ $time_version != *GNU* ]]; then
	echo "run.sh: GNU time is needed at /usr/bin/time to measure peak RSS;" \
		"install it (Debian/Ubuntu: apt-get install time) and run again" >&2
	exit 1
fi

GO=${GO:-go}
size=${BENCH_SIZE:-500M}
out=${BENCH_OUT:-/tmp/dls-bench-results}
mkdir -p "$out"

gobin=$(mktemp -d /tmp/dls-bench-gobin-XXXXXX)
trap 'rm -rf "$gobin"' EXIT

crane=${CRANE:-}
if [ -z "$crane" ]; then
	echo "# installing crane v0.22.1 into $gobin" >&2
	if GOBIN="$gobin" "$GO" install github.com/google/go-containerregistry/cmd/crane@v0.22.1; then
		crane="$gobin/crane"
	else
		echo "# crane could not be installed: its rows are skipped" >&2
	fi
fi

if [ "${BENCH_GO:-1}" != 0 ]; then
	echo "# Go benchmarks (cache, resume, assemble)" >&2
	"$GO" test -run '^$' -bench . -benchmem -benchtime 3x -timeout 20m \
		./cache/ ./resume/ ./assemble/ | tee "$out/go-bench.txt"
fi

make build >/dev/null
echo "# bench program, corpus size $size" >&2
# shellcheck disable=SC2086 # BENCH_ARGS is a list of flags
"$GO" run ./integration/bench -dls bin/dls -crane "$crane" -size "$size" \
	-out "$out/report.md" -log "$out/commands.log" ${BENCH_ARGS:-}
echo "# report: $out/report.md; commands' stderr: $out/commands.log" >&2
