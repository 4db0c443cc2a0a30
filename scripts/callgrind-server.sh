#!/usr/bin/env bash
# Instructions per request inside a ferrokeeper server's core and connection tasks (callgrind,
# stable on a noisy machine, unlike ops/s): runs BIN under valgrind with collection toggled on in
# the core task (`shell::run`, `Core::run` in builds before it) and `Connection::run`, drives fkload against it (8 sessions x 4 in flight, 10 s),
# and divides the instructions by zk_packets_received. Compare two builds with two calls.
#
#   bash scripts/callgrind-server.sh [BIN] [workload ...]
#       BIN default target/release/ferrokeeper; workloads default read-heavy write-heavy
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${1:-$root/target/release/ferrokeeper}"
shift || true
workloads=("$@")
[ ${#workloads[@]} -eq 0 ] && workloads=(read-heavy write-heavy)
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install -y valgrind)" >&2; exit 2; }
[ -x "$root/target/release/fkload" ] || cargo build --release -q -p ferrokeeper-loadgen
work=$(mktemp -d /tmp/fk-callgrind.XXXXXX)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
fourlw() {
  python3 - "$1" "$2" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(sys.argv[2].encode())
out = b""
while True:
    data = s.recv(65536)
    if not data:
        break
    out += data
print(out.decode(errors="replace"))
PY
}
for wl in "${workloads[@]}"; do
  rm -rf "$work/data"; mkdir -p "$work/data"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  printf 'tickTime=2000\ndataDir=%s/data\nclientPort=%s\nclientPortAddress=127.0.0.1\n4lw.commands.whitelist=*\n' \
    "$work" "$port" >"$work/zoo.cfg"
  valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" \
    --toggle-collect='*Core*run*' --toggle-collect='*shell*run*' --toggle-collect='*Connection*run*' \
    "$bin" --config "$work/zoo.cfg" 2>"$work/server.log" &
  pid=$!
  for _ in $(seq 120); do
    fourlw "$port" srvr 2>/dev/null | grep -q Mode && break
    sleep 0.5
  done
  "$root/target/release/fkload" run -w "$root/loadgen/workloads/$wl.yaml" -t "127.0.0.1:$port" --duration 10 \
    --warmup 1 --sessions 8 --inflight 4 --no-progress --no-server-stats --out "$work/r.json" >/dev/null
  packets=$(fourlw "$port" mntr | awk '$1 == "zk_packets_received" { print $2 }')
  kill -TERM "$pid"; wait "$pid" || true; pid=""
  ir=$(callgrind_annotate "$work/cg.out" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
  # FK_CALLGRIND_KEEP=DIR keeps each workload's callgrind output (for callgrind_annotate).
  if [ -n "${FK_CALLGRIND_KEEP:-}" ]; then mkdir -p "$FK_CALLGRIND_KEEP"; cp "$work/cg.out" "$FK_CALLGRIND_KEEP/$wl.out"; fi
  python3 -c "import sys; ir, p = int(sys.argv[1]), int(sys.argv[2]); print(f'{sys.argv[3]}: {p} requests, {ir} instructions, {ir / p:.0f} per request')" \
    "$ir" "$packets" "$wl"
done
