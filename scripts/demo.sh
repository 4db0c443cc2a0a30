#!/usr/bin/env bash
# The main job for now: build ferrokeeper, start it on a sample zoo.cfg, exercise it with
# ZooKeeper's own zkCli.sh (the seed tutorial) and four-letter words, then stop it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
cargo build --release -p ferrokeeper-server
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sed -e "s|^dataDir=.*|dataDir=$work/data|" -e "s|^clientPort=.*|clientPort=$port|" conf/zoo.cfg >"$work/zoo.cfg"
./target/release/ferrokeeper --config "$work/zoo.cfg" 2>"$work/server.log" &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$work"' EXIT
fourlw() { timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"; printf %s "$2" >&3; cat <&3' _ "$port" "$1" 2>/dev/null || true; }
for _ in $(seq 100); do
  [ "$(fourlw ruok)" = imok ] && break
  kill -0 "$pid" || { cat "$work/server.log"; exit 1; }
  sleep 0.1
done
zk() { /usr/share/zookeeper/bin/zkCli.sh -server "127.0.0.1:$port" "$@" 2>/dev/null | grep -v -E '^(Connecting to|WATCHER::|WatchedEvent|$)' || true; }
echo "== ferrokeeper on 127.0.0.1:$port (pid $pid)"
for cmd in "create /java spring" "ls /" "get /java" "set /java springmvc" "stat /java" \
           "create -e /java/eph x" "create -s /java/seq- y" "ls /java" "deleteall /java" "ls /"; do
  echo "\$ zkCli $cmd"
  # shellcheck disable=SC2086
  zk $cmd
done
for word in srvr mntr; do
  echo "\$ echo $word | nc 127.0.0.1 $port"
  fourlw "$word"
done
echo "== stopping ferrokeeper"
