#!/usr/bin/env bash
# What the per-request metrics cost: a standalone server with metricsEnabled=true and =false,
# interleaved on/off/on/off in one run, same fkload workloads; prints throughput per round.
#
#   bash scripts/bench-metrics-cost.sh [rounds]      (default 2; FK_DURATION seconds each, default 6)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
rounds="${1:-2}"
duration="${FK_DURATION:-6}"
cargo build --release -q -p ferrokeeper-server -p ferrokeeper-loadgen
work=$(mktemp -d /tmp/fk-metrics-cost.XXXXXX)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
echo "| round | metrics | workload | ops/s | p99 ms |"
echo "|---:|---|---|---:|---:|"
for round in $(seq "$rounds"); do
  for enabled in true false; do
    rm -rf "$work/data"
    printf 'tickTime=2000\ndataDir=%s/data\nclientPort=%s\nclientPortAddress=127.0.0.1\n4lw.commands.whitelist=*\nmetricsEnabled=%s\nmetricsProvider.httpPort=0\n' \
      "$work" "$port" "$enabled" >"$work/zoo.cfg"
    ./target/release/ferrokeeper --config "$work/zoo.cfg" 2>"$work/server.log" &
    pid=$!
    sleep 0.5
    for wl in write-heavy read-heavy; do
      ./target/release/fkload run -w "loadgen/workloads/$wl.yaml" -t "127.0.0.1:$port" --duration "$duration" \
        --warmup 2 --no-progress --no-server-stats --out "$work/r.json" >/dev/null
      python3 - "$work/r.json" "$round" "$enabled" "$wl" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
p99 = max(op["service"]["p99"] for op in r["ops"].values())
print(f"| {sys.argv[2]} | {'on' if sys.argv[3] == 'true' else 'off'} | {sys.argv[4]} | {r['totals']['throughput']:.0f} | {p99:.2f} |")
PY
    done
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
  done
done
