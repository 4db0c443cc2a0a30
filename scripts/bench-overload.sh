#!/usr/bin/env bash
# Overload through the followers: 3-node ferrokeeper vs 3-node Apache ZooKeeper on this machine,
# the same client (fkload) and load: 100 % setData of 1 KiB, 64 sessions x 32 in flight (2,048,
# twice globalOutstandingLimit), every session connected to one of the two followers. Reports
# throughput, errors, p99 and server CPU per op (utime+stime of the three server processes from
# /proc, divided by ops), and the ratio.
#
#   bash scripts/bench-overload.sh        results in results/overload-<UTC time>/
#
# Environment: FK_DURATION (measured seconds, default 10), FK_RESULTS, FK_SESSIONS (64),
# FK_INFLIGHT (32).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
out="${FK_RESULTS:-$root/results/overload-$(date -u +%Y%m%d-%H%M%S)}"
duration="${FK_DURATION:-10}"
sessions="${FK_SESSIONS:-64}"
inflight="${FK_INFLIGHT:-32}"
mkdir -p "$out"
# Ports of their own, so a cluster of another script or test does not collide.
export FK_CLIENT_PORT_BASE=${FK_CLIENT_PORT_BASE:-41810} FK_PEER_PORT_BASE=${FK_PEER_PORT_BASE:-42880}
export FK_ELECTION_PORT_BASE=${FK_ELECTION_PORT_BASE:-43880}
bash scripts/install-test-deps.sh >/dev/null
cargo build --release -q -p ferrokeeper-server -p ferrokeeper-loadgen
work=$(mktemp -d /tmp/fk-bench-overload.XXXXXX)
stop_all() {
  for impl in ferrokeeper zookeeper; do
    FK_IMPL=$impl FK_CLUSTER_DIR="$work/$impl" scripts/cluster-zk.sh stop 3 >/dev/null 2>&1 || true
  done
}
trap 'stop_all; rm -rf "$work"' EXIT
cpu_ticks() { # pid files -> total utime+stime ticks
  local total=0 f
  for f in "$@"; do
    read -r -a stat <"/proc/$(cat "$f")/stat"
    total=$((total + stat[13] + stat[14]))
  done
  echo "$total"
}
for impl in zookeeper ferrokeeper; do
  echo "== $impl: 3 nodes"
  FK_IMPL=$impl FK_CLUSTER_DIR="$work/$impl" scripts/cluster-zk.sh start 3 >/dev/null
  base=$FK_CLIENT_PORT_BASE
  followers=""
  for _ in $(seq 100); do
    followers=""
    for i in 1 2 3; do
      if FK_IMPL=$impl FK_CLUSTER_DIR="$work/$impl" scripts/cluster-zk.sh status 3 | grep "^node $i " | grep -q "Mode: follower"; then
        followers="${followers:+$followers,}127.0.0.1:$((base + i))"
      fi
    done
    [ "$(echo "$followers" | tr ',' '\n' | grep -c .)" = 2 ] && break
    sleep 0.2
  done
  echo "followers: $followers"
  # Both warmed the same way (it also creates the key tree): a cold JVM would flatter us.
  ./target/release/fkload run -w loadgen/workloads/write-heavy.yaml -t "$followers" --duration 10 --warmup 0 \
    --no-progress --no-server-stats >/dev/null
  pids=("$work/$impl"/node*/pid)
  before=$(cpu_ticks "${pids[@]}")
  ./target/release/fkload run -w loadgen/workloads/write-heavy.yaml -t "$followers" --sessions "$sessions" \
    --inflight "$inflight" --duration "$duration" --warmup 2 --no-progress --skip-setup \
    --out "$out/$impl.json" | grep -E "^(total|set|error)" | sed "s/^/$impl: /" || true
  after=$(cpu_ticks "${pids[@]}")
  echo "$((after - before))" >"$out/$impl.cpu_ticks"
  FK_IMPL=$impl FK_CLUSTER_DIR="$work/$impl" scripts/cluster-zk.sh stop 3 >/dev/null
done
python3 - "$out" "$sessions" "$inflight" "$(getconf CLK_TCK)" "$duration" <<'PY' | tee "$out/summary.md"
import json, sys
out, sessions, inflight, hz, duration = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
print(f"| server | setData/s | errors | p99 ms | server CPU µs/op |  ({sessions} sessions x {inflight} in flight, followers only)")
print("|---|---:|---:|---:|---:|")
rows = {}
for impl in ("zookeeper", "ferrokeeper"):
    r = json.load(open(f"{out}/{impl}.json"))
    ticks = int(open(f"{out}/{impl}.cpu_ticks").read())
    t = r["totals"]
    ops = t.get("ops") or t["throughput"] * duration
    errors = t.get("errors", 0)
    p99 = max(op["service"]["p99"] for op in r["ops"].values())
    # CPU was sampled over warm-up + measured time; ops over the measured time: scale by time.
    cpu_us = ticks / hz * 1e6 / (t["throughput"] * (duration + 2))
    rows[impl] = t["throughput"]
    print(f"| {impl} | {t['throughput']:.0f} | {errors} | {p99:.2f} | {cpu_us:.1f} |")
print(f"\nratio ferrokeeper / ZooKeeper: {rows['ferrokeeper'] / rows['zookeeper']:.2f}x")
PY
