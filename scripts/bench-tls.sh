#!/usr/bin/env bash
# What client TLS costs: ferrokeeper and Apache ZooKeeper 3.8 each serve a plain clientPort and a
# TLS secureClientPort (mutual TLS, the same certificates from make-test-certs.sh, PKCS12 stores
# for ZooKeeper, PEM for ferrokeeper); fkload runs read-heavy and write-heavy against each port,
# the rounds interleaved (plain, TLS, plain, TLS) so drift hits both alike. fkload is the
# client in every run (rustls), so only the server side differs. ZooKeeper's secure port needs
# its Netty connection factory (Debian's netty jars on the class path, which Debian's own
# start script leaves out); its plain port then uses Netty too, so its plain/TLS ratio compares
# like with like.
#
#   bash scripts/bench-tls.sh [rounds] > benches/tls/results.md
#   (default 2 rounds; FK_DURATION seconds per run, default 8; FK_SESSIONS, FK_INFLIGHT)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
rounds="${1:-2}"
duration="${FK_DURATION:-8}"
sessions="${FK_SESSIONS:-16}"
inflight="${FK_INFLIGHT:-4}"
cargo build --release -q -p ferrokeeper-server -p ferrokeeper-loadgen
work=$(mktemp -d /tmp/fk-bench-tls.XXXXXX)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
bash scripts/make-test-certs.sh "$work/certs" >/dev/null
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
zk_cp="/etc/zookeeper/conf:/usr/share/java/zookeeper.jar"
for jar in netty-codec netty-resolver netty-transport-native-unix-common; do
  [ -f "/usr/share/java/$jar.jar" ] && zk_cp="$zk_cp:/usr/share/java/$jar.jar"
done

start_server() { # kind plain_port secure_port
  local kind=$1 plain=$2 secure=$3
  rm -rf "$work/data"; mkdir -p "$work/data"
  local cfg="$work/zoo.cfg"
  printf 'tickTime=2000\ndataDir=%s/data\nclientPort=%s\nclientPortAddress=127.0.0.1\nsecureClientPort=%s\nsecureClientPortAddress=127.0.0.1\nmaxClientCnxns=0\n4lw.commands.whitelist=*\nssl.clientAuth=need\n' \
    "$work" "$plain" "$secure" >"$cfg"
  if [ "$kind" = ferrokeeper ]; then
    printf 'ssl.keyStore.location=%s\nssl.trustStore.location=%s\n' \
      "$work/certs/server.pem" "$work/certs/truststore.pem" >>"$cfg"
    ./target/release/ferrokeeper --config "$cfg" >"$work/server.log" 2>&1 &
  else
    printf 'serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory\nssl.keyStore.location=%s\nssl.keyStore.password=testpass\nssl.trustStore.location=%s\nssl.trustStore.password=testpass\nadmin.enableServer=false\n' \
      "$work/certs/server.p12" "$work/certs/truststore.p12" >>"$cfg"
    java -Xmx1g -Dzookeeper.root.logger=WARN,CONSOLE -cp "$zk_cp" \
      org.apache.zookeeper.server.quorum.QuorumPeerMain "$cfg" >"$work/server.log" 2>&1 &
  fi
  pid=$!
  for _ in $(seq 100); do
    if python3 - "$plain" 2>/dev/null <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
s.sendall(b"ruok")
sys.exit(0 if s.recv(16) == b"imok" else 1)
PY
    then return 0; fi
    sleep 0.2
  done
  echo "server $kind did not start:" >&2; cat "$work/server.log" >&2; exit 1
}

run_load() { # port tls(0/1) workload round server
  local port=$1 tls=$2 wl=$3 round=$4 server=$5
  local flags=()
  if [ "$tls" = 1 ]; then
    flags=(-D zookeeper.client.secure=true -D "zookeeper.ssl.keyStore.location=$work/certs/client.pem"
           -D "zookeeper.ssl.trustStore.location=$work/certs/ca.pem")
  fi
  ./target/release/fkload run -w "loadgen/workloads/$wl.yaml" -t "127.0.0.1:$port" --duration "$duration" \
    --warmup 2 --sessions "$sessions" --inflight "$inflight" --no-progress --no-server-stats \
    "${flags[@]}" --out "$work/r.json" >/dev/null
  python3 - "$work/r.json" "$server" "$wl" "$tls" "$round" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
p99 = max(op["service"]["p99"] for op in r["ops"].values())
errors = r["totals"]["errors"]
mode = "TLS" if sys.argv[4] == "1" else "plain"
print(f"| {sys.argv[2]} | {sys.argv[3]} | {mode} | {sys.argv[5]} | {r['totals']['throughput']:.0f} | {p99:.2f} | {errors} |")
PY
}

echo "| server | workload | port | round | ops/s | p99 ms | errors |"
echo "|---|---|---|---:|---:|---:|---:|"
for server in ferrokeeper zookeeper; do
  plain=$(free_port); secure=$(free_port)
  start_server "$server" "$plain" "$secure"
  for wl in read-heavy write-heavy; do
    for round in $(seq "$rounds"); do
      run_load "$plain" 0 "$wl" "$round" "$server"
      run_load "$secure" 1 "$wl" "$round" "$server"
    done
  done
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
done
