#!/usr/bin/env bash
# Leader kills under write-heavy load, ferrokeeper against Apache ZooKeeper, run by fkload's
# fault schedule on 3-node loopback ensembles (scripts/cluster-zk.sh, the same zoo.cfg for
# both). Each run kills the leader FK_KILLS times (found through srvr when due) and restarts it
# 4 s later; fkload measures each kill's write unavailability window, longest session gap,
# latency peak and errors, and reads every acknowledged write back at the end.
#
#   scripts/fault-compare.sh                 # both implementations, 10 kills each
#   FK_IMPLS=ferrokeeper FK_KILLS=3 scripts/fault-compare.sh
#
# Output: loadgen/results/faults-<time>/{<impl>.json,<impl>.html,summary.md}. Only 127.0.0.1 is used;
# every process started is stopped by pid (the restarted nodes by the pid fkload reports).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
kills=${FK_KILLS:-10}
impls=${FK_IMPLS:-ferrokeeper zookeeper}
period=${FK_KILL_PERIOD:-8}
out=${FK_OUT:-loadgen/results/faults-$(date -u +%Y%m%d-%H%M)}
mkdir -p "$out"
# Ports of their own (not cluster-zk.sh's defaults), so that a cluster someone else runs on
# this machine is neither hit nor in the way.
export FK_CLIENT_PORT_BASE=${FK_CLIENT_PORT_BASE:-31810} FK_PEER_PORT_BASE=${FK_PEER_PORT_BASE:-32880}
export FK_ELECTION_PORT_BASE=${FK_ELECTION_PORT_BASE:-33880}

nice -n 10 cargo build --release -q -p ferrokeeper-server -p ferrokeeper-loadgen
fkload=$root/target/release/fkload

workload=$out/workload.yaml
{
  echo "name: write-heavy-leader-kills"
  echo "description: 100 % setData 1 KiB, 16 sessions x 2 in flight; the leader is killed every ${period} s"
  echo "ops: {set: 1}"
  echo "znodes: 1000"
  echo "value_size: {dist: fixed, size: 1024}"
  echo "sessions: 16"
  echo "inflight: 2"
  echo "warmup_secs: 0"
  echo "duration_secs: $((kills * period + 4))"
  echo "faults:"
  for k in $(seq 0 $((kills - 1))); do
    echo "  - {at: $((4 + k * period)), action: kill, target: leader, restart_at: $((8 + k * period))}"
  done
} >"$workload"

for impl in $impls; do
  dir=$(mktemp -d "/tmp/fk-faults-$impl.XXXXXX")
  export FK_IMPL=$impl FK_CLUSTER_DIR=$dir
  scripts/cluster-zk.sh start 3
  connect=$(scripts/cluster-zk.sh connect 3)
  rc=0
  "$fkload" run -w "$workload" -t "$connect" --no-progress --out "$out/$impl.json" --html "$out/$impl.html" \
    >"$out/$impl.txt" 2>&1 || rc=$?
  tail -n 30 "$out/$impl.txt"
  # Nodes fkload restarted are not in the cluster script's pid files: stop them by their pids.
  if [ -f "$out/$impl.json" ]; then
    for pid in $(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))
for f in r.get("faults", []):
    p = f["event"].get("new_pid")
    if p: print(p)' "$out/$impl.json"); do
      kill "$pid" 2>/dev/null || true
    done
  fi
  scripts/cluster-zk.sh stop 3 || true
  for i in 1 2 3; do cp "$dir/node$i/server.log" "$out/$impl-node$i.log" 2>/dev/null || true; done
  sleep 1
  for pid in $(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))
for f in r.get("faults", []):
    p = f["event"].get("new_pid")
    if p: print(p)' "$out/$impl.json" 2>/dev/null); do
    kill -9 "$pid" 2>/dev/null || true
  done
  rm -rf "$dir"
  [ "$rc" -eq 0 ] || { echo "fkload failed for $impl (exit $rc)" >&2; exit 1; }
done

python3 "$root/scripts/fault_summary.py" "$out" $impls
echo "results: $out"
