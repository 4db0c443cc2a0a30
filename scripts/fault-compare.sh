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

python3 - "$out" $impls <<'EOF'
import json, statistics, sys
out, impls = sys.argv[1], sys.argv[2:]
lines = ["# Leader kills under write-heavy load", "",
         "3-node loopback ensembles from `scripts/cluster-zk.sh` (tickTime=2000, forceSync=yes), "
         "fkload `faults:` schedule (`workload.yaml`): the leader, found through `srvr`, is SIGKILLed "
         "and restarted 4 s later. Window = first failed or stalled write → first success of a write "
         "sent after it; gap = longest any session waited to write. One machine, 2 cores, shared.", ""]
summary = []
for impl in impls:
    r = json.load(open(f"{out}/{impl}.json"))
    kills = [f for f in r["faults"] if f["event"]["action"] == "kill"]
    d = r.get("durability") or {}
    lines += [f"## {impl}", "",
              f"{r['totals']['ops']} ops, {r['totals']['throughput']:.0f} ops/s overall, "
              f"{r['totals']['errors']} errors. Acknowledged writes: {d.get('acked_writes', 0)}, "
              f"{d.get('keys_checked', 0)} keys read back, lost {len(d.get('lost', []))}, "
              f"unreadable {len(d.get('unreadable', []))}: **{'none lost' if d.get('ok') else 'CHECK FAILED'}**.", "",
              "| kill | t (s) | node | window ms | session gap ms | latency peak ms | errors | recovered |",
              "|---:|---:|---:|---:|---:|---:|---|---|"]
    for i, f in enumerate(kills, 1):
        e = f["event"]
        lines.append(f"| {i} | {e['t']:.1f} | {e.get('node')} | {f['write_unavailable_ms']:.0f} | "
                     f"{f.get('session_write_gap_max_ms', 0):.0f} | {f['latency_peak_ms']:.0f} | "
                     f"{f['errors_by_code']} | {f['recovered']}{' ACTION FAILED: ' + e['error'] if e.get('error') else ''} |")
    w = [f["write_unavailable_ms"] for f in kills]
    if w:
        summary.append(f"| {impl} | {len(w)} | {statistics.median(w):.0f} | {min(w):.0f} | {max(w):.0f} | "
                       f"{statistics.median([f['latency_peak_ms'] for f in kills]):.0f} | "
                       f"{'yes' if d.get('ok') else 'NO'} |")
    lines.append("")
lines[8:8] = ["| implementation | kills | median window ms | min | max | median latency peak ms | every acked write readable |",
              "|---|---:|---:|---:|---:|---:|---|"] + summary + [""]
open(f"{out}/summary.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
echo "results: $out"
