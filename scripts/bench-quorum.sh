#!/usr/bin/env bash
# 3-node ferrokeeper vs 3-node Apache ZooKeeper on this machine, one after the other, same
# client (fkload) and workloads: 100 % reads, 90/10, 100 % writes. Prints and writes the ratios.
#
#   bash scripts/bench-quorum.sh        results in results/quorum-<UTC time>/
#
# Environment: FK_DURATION (measured seconds per workload, default 10), FK_RESULTS.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
out="${FK_RESULTS:-$root/results/quorum-$(date -u +%Y%m%d-%H%M%S)}"
duration="${FK_DURATION:-10}"
mkdir -p "$out"
bash scripts/install-test-deps.sh >/dev/null
cargo build --release -q -p ferrokeeper-server -p ferrokeeper-loadgen
workloads=(read-only read-90 write-heavy)
work=$(mktemp -d /tmp/fk-bench-quorum.XXXXXX)
stop_all() {
  for impl in ferrokeeper zookeeper; do
    FK_IMPL=$impl FK_CLUSTER_DIR="$work/$impl" scripts/cluster-zk.sh stop 3 >/dev/null 2>&1 || true
  done
}
trap 'stop_all; rm -rf "$work"' EXIT
for impl in ferrokeeper zookeeper; do
  echo "== $impl: 3 nodes"
  FK_IMPL=$impl FK_CLUSTER_DIR="$work/$impl" scripts/cluster-zk.sh start 3 >/dev/null
  target=$(FK_IMPL=$impl FK_CLUSTER_DIR="$work/$impl" scripts/cluster-zk.sh connect 3)
  for wl in "${workloads[@]}"; do
    ./target/release/fkload run -w "loadgen/workloads/$wl.yaml" -t "$target" --duration "$duration" --warmup 3 \
      --no-progress --out "$out/$impl-$wl.json" | grep -E "^(total|get|set) " | sed "s/^/$impl $wl: /"
  done
  FK_IMPL=$impl FK_CLUSTER_DIR="$work/$impl" scripts/cluster-zk.sh stop 3 >/dev/null
done
python3 - "$out" "${workloads[@]}" <<'PY' | tee "$out/summary.md"
import json, sys
out, workloads = sys.argv[1], sys.argv[2:]
print("| workload | ZooKeeper ops/s | ferrokeeper ops/s | ratio | ZooKeeper p99 ms | ferrokeeper p99 ms |")
print("|---|---:|---:|---:|---:|---:|")
def load(impl, wl):
    return json.load(open(f"{out}/{impl}-{wl}.json"))
for wl in workloads:
    zk, fk = load("zookeeper", wl), load("ferrokeeper", wl)
    tput = lambda r: r["totals"]["throughput"]
    p99 = lambda r: max(op["service"]["p99"] for op in r["ops"].values())
    z, f = tput(zk), tput(fk)
    print(f"| {wl} | {z:.0f} | {f:.0f} | {f/z:.2f} | {p99(zk):.2f} | {p99(fk):.2f} |")
PY
