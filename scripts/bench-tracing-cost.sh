#!/usr/bin/env bash
# What tracing costs: a standalone server with OTLP export off, on at otlp.sampleRatio=0.01 and
# on at 1 (every request), interleaved off/0.01/1 per round in one run, same fkload workloads,
# exporting to a local sink that accepts every OTLP/HTTP POST (so the export's own CPU is
# paid). Prints throughput, p99, and how many spans the server exported or lost per run.
#
#   bash scripts/bench-tracing-cost.sh [rounds]      (default 2; FK_DURATION seconds each, default 6)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
rounds="${1:-2}"
duration="${FK_DURATION:-6}"
cargo build --release -q -p ferrokeeper-server -p ferrokeeper-loadgen
work=$(mktemp -d /tmp/fk-tracing-cost.XXXXXX)
pid=""
sink=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null
  [ -n "$sink" ] && kill "$sink" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
metrics_port=$(free_port)
sink_port=$(free_port)
# The sink: HTTP/1.1 keep-alive, 200 to every POST, counts requests and bytes.
python3 - "$sink_port" <<'PY' &
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
PY
sink=$!
sleep 0.5
metric() {
  curl -s "http://127.0.0.1:$metrics_port/metrics" | awk -v n="$1" '$1 == n { print $2 }'
}
echo "| round | tracing | workload | ops/s | p99 ms | traced requests | spans exported |"
echo "|---:|---|---|---:|---:|---:|---:|"
for round in $(seq "$rounds"); do
  for mode in off 0.01 1; do
    rm -rf "$work/data"
    printf 'tickTime=2000\ndataDir=%s/data\nclientPort=%s\nclientPortAddress=127.0.0.1\n4lw.commands.whitelist=*\nmetricsProvider.httpPort=%s\nmetricsProvider.httpHost=127.0.0.1\n' \
      "$work" "$port" "$metrics_port" >"$work/zoo.cfg"
    if [ "$mode" != off ]; then
      printf 'otlp.endpoint=http://127.0.0.1:%s\notlp.sampleRatio=%s\n' "$sink_port" "$mode" >>"$work/zoo.cfg"
    fi
    ./target/release/ferrokeeper --config "$work/zoo.cfg" 2>"$work/server.log" &
    pid=$!
    sleep 0.5
    for wl in write-heavy read-heavy; do
      before_traced=$(metric ferrokeeper_otlp_traced_requests_total); before_traced=${before_traced:-0}
      before_spans=$(metric ferrokeeper_otlp_exported_spans_total); before_spans=${before_spans:-0}
      ./target/release/fkload run -w "loadgen/workloads/$wl.yaml" -t "127.0.0.1:$port" --duration "$duration" \
        --warmup 2 --no-progress --no-server-stats --out "$work/r.json" >/dev/null
      sleep 6 # the SDK exports every 5 s
      traced=$(metric ferrokeeper_otlp_traced_requests_total); traced=${traced:-0}
      spans=$(metric ferrokeeper_otlp_exported_spans_total); spans=${spans:-0}
      python3 - "$work/r.json" "$round" "$mode" "$wl" "$before_traced" "$traced" "$before_spans" "$spans" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
p99 = max(op["service"]["p99"] for op in r["ops"].values())
mode, wl = sys.argv[3], sys.argv[4]
traced = float(sys.argv[6]) - float(sys.argv[5])
spans = float(sys.argv[8]) - float(sys.argv[7])
extra = "| - | -" if mode == "off" else f"| {traced:.0f} | {spans:.0f}"
print(f"| {sys.argv[2]} | {mode} | {wl} | {r['totals']['throughput']:.0f} | {p99:.2f} {extra} |")
PY
    done
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
  done
done
