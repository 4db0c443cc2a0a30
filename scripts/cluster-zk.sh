#!/usr/bin/env bash
# Starts, stops or inspects an N-node loopback ensemble of Apache ZooKeeper (default) or
# ferrokeeper (FK_IMPL=ferrokeeper), one node per directory under $FK_CLUSTER_DIR.
#
#   scripts/cluster-zk.sh start N     # N=1: standalone; N>1: quorum (server.i lines + myid)
#   scripts/cluster-zk.sh status [N]  # each node's Mode: (srvr four-letter word)
#   scripts/cluster-zk.sh stop [N]    # kills the recorded pids only
#   scripts/cluster-zk.sh connect [N] # prints the connect string
#
# Environment: FK_CLUSTER_DIR (default /tmp/fk-cluster-<impl>), FK_IMPL=zookeeper|ferrokeeper,
# FK_BIN (ferrokeeper binary, default target/release/ferrokeeper), FK_CLIENT_PORT_BASE (21810:
# node i listens on base+i), FK_PEER_PORT_BASE (22880) / FK_ELECTION_PORT_BASE (23880),
# FORCE_SYNC (yes), FK_EXTRA_CFG (extra zoo.cfg lines), ZK_JVM_OPTS (-Xmx1g), FK_OBSERVERS (0: the
# last FK_OBSERVERS of the N nodes are observers, `server.i=...:observer` and peerType=observer).
# Only 127.0.0.1 is used.
set -euo pipefail
cmd=${1:-status}
n=${2:-}
impl=${FK_IMPL:-zookeeper}
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${FK_CLUSTER_DIR:-/tmp/fk-cluster-$impl}
client_base=${FK_CLIENT_PORT_BASE:-21810}
peer_base=${FK_PEER_PORT_BASE:-22880}
election_base=${FK_ELECTION_PORT_BASE:-23880}
zk_jar=/usr/share/java/zookeeper.jar
zk_conf=/etc/zookeeper/conf

# A running cluster remembers its ports (start writes them), so status/stop need no environment.
if [ "$cmd" != start ] && [ -f "$dir/ports" ]; then
  # shellcheck disable=SC1091
  . "$dir/ports"
fi
if [ -z "$n" ]; then
  n=$(cat "$dir/size" 2>/dev/null || echo 1)
fi
case "$n" in '' | *[!0-9]*) echo "N must be a number" >&2; exit 2 ;; esac

fourlw() { # port word
  timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"; printf %s "$2" >&3; cat <&3' _ "$1" "$2" 2>/dev/null || true
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

connect_string() {
  local s="" i
  for i in $(seq 1 "$n"); do s="${s:+$s,}127.0.0.1:$((client_base + i))"; done
  echo "$s"
}

start() {
  mkdir -p "$dir"
  echo "$n" >"$dir/size"
  printf 'client_base=%s\npeer_base=%s\nelection_base=%s\nimpl=%s\n' \
    "$client_base" "$peer_base" "$election_base" "$impl" >"$dir/ports"
  local i
  for i in $(seq 1 "$n"); do
    local node="$dir/node$i"
    if alive "$node/pid"; then
      echo "node $i already running (pid $(cat "$node/pid"))"
      continue
    fi
    rm -rf "$node"
    mkdir -p "$node/data"
    echo "$i" >"$node/data/myid"
    {
      echo "tickTime=2000"
      echo "initLimit=10"
      echo "syncLimit=5"
      echo "dataDir=$node/data"
      echo "clientPort=$((client_base + i))"
      echo "clientPortAddress=127.0.0.1"
      echo "4lw.commands.whitelist=*"
      echo "admin.enableServer=false"
      echo "maxClientCnxns=0"
      echo "forceSync=${FORCE_SYNC:-yes}"
      if [ "$n" -gt 1 ]; then
        local j observers=${FK_OBSERVERS:-0}
        [ "$i" -gt $((n - observers)) ] && echo "peerType=observer"
        for j in $(seq 1 "$n"); do
          local role=""
          [ "$j" -gt $((n - observers)) ] && role=":observer"
          # ZooKeeper insists the client address here equals clientPortAddress:clientPort;
          # ferrokeeper takes the port alone.
          local client="127.0.0.1:$((client_base + j))"
          [ "$impl" = ferrokeeper ] && client=$((client_base + j))
          echo "server.$j=127.0.0.1:$((peer_base + j)):$((election_base + j))$role;$client"
        done
      fi
      [ -n "${FK_EXTRA_CFG:-}" ] && printf '%s\n' "$FK_EXTRA_CFG"
    } >"$node/zoo.cfg"
    if [ "$impl" = ferrokeeper ]; then
      local bin=${FK_BIN:-$root/target/release/ferrokeeper}
      [ -x "$bin" ] || { echo "missing $bin: cargo build --release -p ferrokeeper-server" >&2; exit 1; }
      nohup "$bin" --config "$node/zoo.cfg" >"$node/server.log" 2>&1 </dev/null &
    else
      [ -f "$zk_jar" ] || { echo "missing $zk_jar: scripts/fkload-test-deps.sh" >&2; exit 1; }
      # shellcheck disable=SC2086
      nohup java ${ZK_JVM_OPTS:--Xmx1g} -Dzookeeper.admin.enableServer=false \
        -Dzookeeper.log.dir="$node" -Dzookeeper.root.logger=WARN,CONSOLE \
        -cp "$zk_conf:$zk_jar" org.apache.zookeeper.server.quorum.QuorumPeerMain "$node/zoo.cfg" \
        >"$node/server.log" 2>&1 </dev/null &
    fi
    echo $! >"$node/pid"
  done
  # Wait until every node serves clients (a quorum member only does once a leader exists).
  local deadline=$((SECONDS + ${FK_START_TIMEOUT:-90}))
  for i in $(seq 1 "$n"); do
    until fourlw $((client_base + i)) srvr | grep -q '^Mode:'; do
      if ! alive "$dir/node$i/pid"; then
        echo "node $i died; log:" >&2
        tail -20 "$dir/node$i/server.log" >&2
        exit 1
      fi
      if [ $SECONDS -ge $deadline ]; then
        echo "node $i not serving after ${FK_START_TIMEOUT:-90}s" >&2
        exit 1
      fi
      sleep 0.3
    done
  done
  # Another process may have held a port: then our node died although something answered srvr.
  sleep 0.5
  for i in $(seq 1 "$n"); do
    if ! alive "$dir/node$i/pid"; then
      echo "node $i exited (port taken by another process?); log:" >&2
      tail -5 "$dir/node$i/server.log" >&2
      stop
      exit 1
    fi
  done
  status
  echo "connect: $(connect_string)"
}

status() {
  local i
  for i in $(seq 1 "$n"); do
    local node="$dir/node$i" port=$((client_base + i)) pid="-" mode
    [ -f "$node/pid" ] && pid=$(cat "$node/pid")
    if alive "$node/pid"; then
      mode=$(fourlw "$port" srvr | grep '^Mode:' || true)
      echo "node $i ($impl) 127.0.0.1:$port pid $pid ${mode:-Mode: (not serving)}"
    else
      echo "node $i ($impl) 127.0.0.1:$port pid $pid not running"
    fi
  done
}

stop() {
  local i
  for i in $(seq 1 "$n"); do
    local pidf="$dir/node$i/pid"
    if alive "$pidf"; then
      local pid
      pid=$(cat "$pidf")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
      echo "node $i stopped (pid $pid)"
    fi
    rm -f "$pidf"
  done
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  connect) connect_string ;;
  *) echo "usage: $0 start|stop|status|connect N" >&2; exit 2 ;;
esac
