#!/usr/bin/env bash
# Runs the same fkload workloads against a ferrokeeper standalone server and an Apache ZooKeeper
# standalone server on this machine (one after the other, never both at once) and prints the
# ferrokeeper / ZooKeeper ratios. FK_NODES=3 compares 3-node loopback ensembles instead.
#
#   scripts/fkload-compare.sh [workload.yaml ...]     default: write-heavy and read-heavy
#
# Environment: FKLOAD_ARGS (extra `fkload run` flags, e.g. "--duration 20 --sessions 32"),
# FK_RESULTS (output dir; default loadgen/results/compare-<UTC date>), FORCE_SYNC (yes),
# FK_EXTRA_CFG (extra zoo.cfg lines for ferrokeeper, e.g. "txnLogBackend=uring"),
# ZK_EXTRA_CFG (extra zoo.cfg lines for ZooKeeper), FK_HTML_DIR (also write HTML reports there),
# FK_SWEEP=RATE (also search each server's highest open-loop rate meeting the workload's SLO,
# starting at RATE ops/s; writes <impl>-<workload>-sweep.json).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
workloads=("$@")
[ ${#workloads[@]} -eq 0 ] && workloads=(loadgen/workloads/write-heavy.yaml loadgen/workloads/read-heavy.yaml)
out=${FK_RESULTS:-loadgen/results/compare-$(date -u +%Y%m%d-%H%M)}
mkdir -p "$out"
cargo build --release -q -p ferrokeeper-server -p ferrokeeper-loadgen
fkload=$root/target/release/fkload
work=$(mktemp -d /tmp/fkload-compare.XXXXXX)
export FORCE_SYNC=${FORCE_SYNC:-yes}
nodes=${FK_NODES:-1}
export FK_PEER_PORT_BASE=${FK_PEER_PORT_BASE:-26880} FK_ELECTION_PORT_BASE=${FK_ELECTION_PORT_BASE:-27880}

stop_all() {
  FK_IMPL=ferrokeeper FK_CLUSTER_DIR="$work/ferrokeeper" scripts/cluster-zk.sh stop >/dev/null 2>&1 || true
  FK_IMPL=zookeeper FK_CLUSTER_DIR="$work/zookeeper" scripts/cluster-zk.sh stop >/dev/null 2>&1 || true
}
trap 'stop_all; rm -rf "$work"' EXIT

run_impl() { # impl port extra-cfg
  local impl=$1 port=$2
  echo "== $impl x$nodes (forceSync=$FORCE_SYNC)"
  FK_IMPL=$impl FK_CLUSTER_DIR="$work/$impl" FK_CLIENT_PORT_BASE=$((port - 1)) FK_EXTRA_CFG="$3" \
    scripts/cluster-zk.sh start "$nodes"
  local target
  target=$(FK_CLUSTER_DIR="$work/$impl" scripts/cluster-zk.sh connect)
  for wl in "${workloads[@]}"; do
    local name
    name=$(basename "$wl" .yaml)
    local html=()
    [ -n "${FK_HTML_DIR:-}" ] && mkdir -p "$FK_HTML_DIR" && html=(--html "$FK_HTML_DIR/$impl-$name.html")
    # shellcheck disable=SC2086
    "$fkload" run -w "$wl" -t "$target" --no-progress --out "$out/$impl-$name.json" "${html[@]}" ${FKLOAD_ARGS:-}
    if [ -n "${FK_SWEEP:-}" ]; then
      "$fkload" run -w "$wl" -t "$target" --no-progress --skip-setup --sweep "$FK_SWEEP" --sweep-runs 7 \
        --duration 5 --warmup 1 --out "$out/$impl-$name-sweep.json" | grep -E '^(step|fkload)' || true
    fi
  done
  FK_IMPL=$impl FK_CLUSTER_DIR="$work/$impl" scripts/cluster-zk.sh stop
}

run_impl ferrokeeper 31811 "${FK_EXTRA_CFG:-}"
run_impl zookeeper 31821 "${ZK_EXTRA_CFG:-}"

summary="$out/summary.md"
{
  if [ "$nodes" = 1 ]; then shape=standalone; else shape="$nodes-node loopback ensembles"; fi
  echo "# ferrokeeper vs Apache ZooKeeper ($shape, forceSync=$FORCE_SYNC)"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores (load average at the end: $(cut -d" " -f1-3 /proc/loadavg)); fkload flags: ${FKLOAD_ARGS:-(workload defaults)}"
  echo
  echo "| workload | ZK ops/s | FK ops/s | FK/ZK | ZK p99 ms | FK p99 ms | fkload CPU µs/op (ZK run / FK run) |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
} >"$summary"
for wl in "${workloads[@]}"; do
  name=$(basename "$wl" .yaml)
  echo "== $name: A = ZooKeeper, B = ferrokeeper"
  "$fkload" compare "$out/zookeeper-$name.json" "$out/ferrokeeper-$name.json" --threshold 1000% || true
  python3 - "$out/zookeeper-$name.json" "$out/ferrokeeper-$name.json" "$name" >>"$summary" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
def p99(r):
    return max((o.get("response") or o["service"])["p99"] for o in r["ops"].values())
ta, tb = a["totals"]["throughput"], b["totals"]["throughput"]
print(f"| {sys.argv[3]} | {ta:.0f} | {tb:.0f} | {tb / ta if ta else 0:.2f} | {p99(a):.2f} | {p99(b):.2f} | "
      f"{a['client_cpu']['cpu_us_per_op']:.2f} / {b['client_cpu']['cpu_us_per_op']:.2f} |")
PY
done
if [ -n "${FK_SWEEP:-}" ]; then
  {
    echo
    echo "Open-loop sweep (highest rate meeting the workload's SLO, CO-corrected response time):"
    echo
    echo "| workload | ZK best ops/s | FK best ops/s | FK/ZK |"
    echo "|---|---:|---:|---:|"
  } >>"$summary"
  for wl in "${workloads[@]}"; do
    name=$(basename "$wl" .yaml)
    python3 - "$out/zookeeper-$name-sweep.json" "$out/ferrokeeper-$name-sweep.json" "$name" >>"$summary" <<'PY'
import json, sys
def best(p):
    r = json.load(open(p))
    ok = [s["rate"] for s in r["steps"] if s["ok"]]
    return max(ok) if ok else 0.0
a, b = best(sys.argv[1]), best(sys.argv[2])
print(f"| {sys.argv[3]} | {a:.0f} | {b:.0f} | {b / a if a else float('nan'):.2f} |")
PY
  done
fi
echo
cat "$summary"
