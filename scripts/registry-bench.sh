#!/bin/bash
# registry-bench.sh: push and pull a 200 MB image of 20 layers, the cais
# registry against the reference registry (distribution/distribution,
# built from the Go module proxy at run time) on the same disk, and the
# disk's own copy throughput (issue 5, point 5). Best of RUNS each.
#
#   scripts/registry-bench.sh [out-file]
set -euo pipefail
GO=${GO:-go}
REPO=$(cd "$(dirname "$0")/.." && pwd)
REF_VERSION=${REF_VERSION:-v3.0.0}
RUNS=${RUNS:-3}
MB=${MB:-200}
LAYERS=${LAYERS:-20}
OUT=${1:-}
work=$(mktemp -d /var/tmp/cais-registry-bench.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

(cd "$REPO" && "$GO" build -o "$work/testserver" ./registry/internal/testserver && "$GO" build -o "$work/bench" ./registry/internal/bench)
echo "registry-bench: building distribution/distribution $REF_VERSION from the module proxy"
mkdir -p "$work/ref"
(cd "$work/ref" && printf 'module refregistry\n\ngo 1.24\n' > go.mod &&
	GOFLAGS=-mod=mod "$GO" get "github.com/distribution/distribution/v3/cmd/registry@$REF_VERSION" >/dev/null 2>&1 &&
	GOFLAGS=-mod=mod "$GO" build -o "$work/registry" github.com/distribution/distribution/v3/cmd/registry)

"$work/testserver" -addr 127.0.0.1:0 -dir "$work/cais-data" >"$work/cais.addr" 2>/dev/null &
pids+=($!)
cat >"$work/ref.yml" <<YML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $work/ref-data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:5099
YML
"$work/registry" serve "$work/ref.yml" >"$work/ref.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do [ -s "$work/cais.addr" ] && curl -sf http://127.0.0.1:5099/v2/ >/dev/null && break; sleep 0.2; done
cais="http://$(head -1 "$work/cais.addr")"

# The disk's own copy: write MB with fsync, read it back.
disk_push=999 disk_pull=999
for r in $(seq "$RUNS"); do
	head -c $((MB << 20)) /dev/urandom >"$work/src.bin"
	s=$(date +%s.%N); cp "$work/src.bin" "$work/dst.bin"; sync "$work/dst.bin"; e=$(date +%s.%N)
	t=$(echo "$e - $s" | bc); disk_push=$(echo "if ($t < $disk_push) $t else $disk_push" | bc)
	s=$(date +%s.%N); cat "$work/dst.bin" >/dev/null; e=$(date +%s.%N)
	t=$(echo "$e - $s" | bc); disk_pull=$(echo "if ($t < $disk_pull) $t else $disk_pull" | bc)
	rm -f "$work/src.bin" "$work/dst.bin"
done

best() { # url -> "push pull" best of RUNS
	local bp=999 bl=999
	for r in $(seq "$RUNS"); do
		read -r _ p _ _ _ _ l _ _ < <("$work/bench" -url "$1" -repo "bench/r$r" -layers "$LAYERS" -mb "$MB")
		bp=$(echo "if ($p < $bp) $p else $bp" | bc); bl=$(echo "if ($l < $bl) $l else $bl" | bc)
	done
	echo "$bp $bl"
}
read -r cp_ cl < <(best "$cais")
read -r rp rl < <(best http://127.0.0.1:5099)
{
	echo "registry bench: $MB MB image, $LAYERS layers, docker-like pushes (POST, PATCH, PUT; 3 at a time), best of $RUNS, $(date -u +%F)"
	printf '%-32s %10s %10s %10s %10s\n' "" "push s" "MB/s" "pull s" "MB/s"
	for row in "cais:$cp_:$cl" "distribution $REF_VERSION:$rp:$rl" "disk copy (cp + sync):$disk_push:$disk_push"; do
		IFS=: read -r name p l <<<"$row"
		printf '%-32s %10.3f %10.0f %10.3f %10.0f\n' "$name" "$p" "$(echo "$MB / $p" | bc -l)" "$l" "$(echo "$MB / $l" | bc -l)"
	done
	printf 'cais / reference throughput: push %.2fx, pull %.2fx; cais / disk copy: push %.0f%%, pull %.0f%%\n' \
		"$(echo "$rp / $cp_" | bc -l)" "$(echo "$rl / $cl" | bc -l)" "$(echo "100 * $disk_push / $cp_" | bc -l)" "$(echo "100 * $disk_push / $cl" | bc -l)"
	printf '(reading the copy alone, from the page cache: %.3f s; pulls are served from the page cache too)\n' "$disk_pull"
} | tee "$work/table"
[ -n "$OUT" ] && cp "$work/table" "$OUT"
exit 0
