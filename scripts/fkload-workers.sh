#!/usr/bin/env bash
# fkload's worker mode against one local 3-node ferrokeeper ensemble: the same workload run by
# one process, then by 2 and 4 `--worker I/N --start-at` processes merged with `fkload merge`;
# prints the throughputs, p99s and the merged/single ratio (the merge should lose nothing: within
# 5 % of one process with the same sessions, when fkload is not what limits the run).
#
#   scripts/fkload-workers.sh                          # write-heavy, closed loop, 20 s runs
#   FK_WORKLOAD=loadgen/workloads/read-heavy.yaml FK_SECS=30 scripts/fkload-workers.sh
#   FK_WORKER_THREADS=1 scripts/fkload-workers.sh     # one runtime thread per worker process
#
# Output: loadgen/results/workers-<time>/{single,n2,n4}.json, w*.json, summary.md. Only
# 127.0.0.1; the ensemble (scripts/cluster-zk.sh) is stopped by pid at the end.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
workload=${FK_WORKLOAD:-loadgen/workloads/write-heavy.yaml}
secs=${FK_SECS:-20}
out=${FK_OUT:-loadgen/results/workers-$(date -u +%Y%m%d-%H%M)}
mkdir -p "$out"
# Ports of their own (not cluster-zk.sh's defaults), so that a cluster someone else runs on
# this machine is neither hit nor in the way.
export FK_CLIENT_PORT_BASE=${FK_CLIENT_PORT_BASE:-31810} FK_PEER_PORT_BASE=${FK_PEER_PORT_BASE:-32880}
export FK_ELECTION_PORT_BASE=${FK_ELECTION_PORT_BASE:-33880}
nice -n 10 cargo build --release -q -p ferrokeeper-server -p ferrokeeper-loadgen
fkload=$root/target/release/fkload
dir=$(mktemp -d /tmp/fk-workers.XXXXXX)
export FK_IMPL=ferrokeeper FK_CLUSTER_DIR=$dir
trap 'scripts/cluster-zk.sh stop 3 >/dev/null || true; rm -rf "$dir"' EXIT
scripts/cluster-zk.sh start 3
connect=$(scripts/cluster-zk.sh connect 3)
common=(-w "$workload" -t "$connect" --duration "$secs" --warmup 3 --no-progress --no-server-stats)

"$fkload" run "${common[@]}" --out "$out/single.json" >"$out/single.txt"
for n in 2 4; do
  at=$(python3 -c 'import time; print(f"@{time.time() + 5:.3f}")')
  pids=()
  for i in $(seq 0 $((n - 1))); do
    # FK_WORKER_THREADS: runtime threads per worker process (tokio's TOKIO_WORKER_THREADS), so N
    # processes on one machine need not run N times the threads of one.
    env ${FK_WORKER_THREADS:+TOKIO_WORKER_THREADS=$FK_WORKER_THREADS} \
      "$fkload" run "${common[@]}" --skip-setup --worker "$i/$n" --start-at "$at" --out "$out/n$n-w$i.json" \
      >"$out/n$n-w$i.txt" 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  "$fkload" merge "$out"/n$n-w*.json --out "$out/n$n.json" --html "$out/n$n.html" >"$out/n$n.txt"
done

python3 - "$out" "$workload" "$secs" <<'EOF'
import json, os, sys
out, workload, secs = sys.argv[1], sys.argv[2], sys.argv[3]
single = json.load(open(f"{out}/single.json"))
rows = ["# fkload worker mode: one process vs N merged workers", "",
        f"`{workload}`, {secs} s measured, the same sessions in total, runtime threads per worker "
        f"process: {os.environ.get('FK_WORKER_THREADS') or 'tokio default (one per core)'}; a local 3-node ferrokeeper "
        "ensemble (release build, `scripts/cluster-zk.sh`), all on one 2-core machine.", "",
        "| processes | ops/s | ratio to 1 process | p99 ms (worst op) | fkload CPU µs/op | flags |",
        "|---:|---:|---:|---:|---:|---|"]
def p99(r):
    return max((o.get("response") or o["service"])["p99"] for o in r["ops"].values())
for name, n in [("single", 1), ("n2", 2), ("n4", 4)]:
    r = json.load(open(f"{out}/{name}.json"))
    rows.append(f"| {n} | {r['totals']['throughput']:.0f} | {r['totals']['throughput'] / single['totals']['throughput']:.3f} | "
                f"{p99(r):.2f} | {r['client_cpu']['cpu_us_per_op']:.1f} | {'; '.join(r.get('merge_flags', [])) or '-'} |")
open(f"{out}/summary.md", "w").write("\n".join(rows) + "\n")
print("\n".join(rows))
EOF
echo "results: $out"
