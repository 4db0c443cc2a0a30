#!/usr/bin/env bash
# Read scaling with observers: 3 voters vs 3 voters + 2 observers, ferrokeeper and Apache
# ZooKeeper 3.8 one after the other on this machine, same client (fkload) and workloads
# (100 % reads, 90/10), fkload's sessions spread over every member of the connect string.
# Prints and writes a table with each implementation's 5-member/3-member ratio.
#
#   bash scripts/bench-observers.sh        results in results/observers-<UTC time>/
#
# Environment: FK_DURATION (measured seconds per run, default 10), FK_RESULTS.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
out="${FK_RESULTS:-$root/results/observers-$(date -u +%Y%m%d-%H%M%S)}"
duration="${FK_DURATION:-10}"
mkdir -p "$out"
bash scripts/install-test-deps.sh >/dev/null
cargo build --release -q -p ferrokeeper-server -p ferrokeeper-loadgen
workloads=(read-only read-90)
layouts=("3 0" "5 2")
work=$(mktemp -d /tmp/fk-bench-observers.XXXXXX)
stop_all() {
  for impl in ferrokeeper zookeeper; do
    for layout in "${layouts[@]}"; do
      set -- $layout
      FK_IMPL=$impl FK_CLUSTER_DIR="$work/$impl-$1" scripts/cluster-zk.sh stop "$1" >/dev/null 2>&1 || true
    done
  done
}
trap 'stop_all; rm -rf "$work"' EXIT
for impl in ferrokeeper zookeeper; do
  for layout in "${layouts[@]}"; do
    set -- $layout
    n=$1 observers=$2
    echo "== $impl: $((n - observers)) voters + $observers observers"
    env="FK_IMPL=$impl FK_CLUSTER_DIR=$work/$impl-$n FK_OBSERVERS=$observers"
    env $env scripts/cluster-zk.sh start "$n" | grep '^node'
    target=$(env $env scripts/cluster-zk.sh connect "$n")
    for wl in "${workloads[@]}"; do
      ./target/release/fkload run -w "loadgen/workloads/$wl.yaml" -t "$target" --duration "$duration" \
        --warmup 3 --no-progress --out "$out/$impl-$n-$wl.json" | grep -E "^(total) " | sed "s/^/$impl $n $wl: /"
    done
    env $env scripts/cluster-zk.sh stop "$n" >/dev/null
  done
done
python3 - "$out" "${workloads[@]}" <<'PY' | tee "$out/summary.md"
import json, sys
out, workloads = sys.argv[1], sys.argv[2:]
print("| workload | implementation | 3 voters ops/s | 3 voters + 2 observers ops/s | ratio | p99 ms (3) | p99 ms (3+2) |")
print("|---|---|---:|---:|---:|---:|---:|")
def load(impl, n, wl):
    return json.load(open(f"{out}/{impl}-{n}-{wl}.json"))
tput = lambda r: r["totals"]["throughput"]
p99 = lambda r: max(op["service"]["p99"] for op in r["ops"].values())
for wl in workloads:
    for impl in ("ferrokeeper", "zookeeper"):
        three, five = load(impl, 3, wl), load(impl, 5, wl)
        print(f"| {wl} | {impl} | {tput(three):.0f} | {tput(five):.0f} | {tput(five)/tput(three):.2f} "
              f"| {p99(three):.2f} | {p99(five):.2f} |")
PY
