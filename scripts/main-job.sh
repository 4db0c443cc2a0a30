#!/usr/bin/env bash
# The main job: on a fresh machine, build ferrokeeper and fkload, start a local three-node
# ferrokeeper cluster, run the read-heavy and write-heavy workloads against it (sessions spread
# over the three nodes), write the report, and stop the cluster.
#
#   bash scripts/main-job.sh            results in results/main-<UTC time>/
#
# Environment: FK_DURATION (measured seconds per workload, default 15), FK_RESULTS (output
# directory). Report: summary.md (table), <workload>.json (fkload result with the servers'
# mntr figures), <workload>.html (self-contained charts).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
out="${FK_RESULTS:-$root/results/main-$(date -u +%Y%m%d-%H%M%S)}"
duration="${FK_DURATION:-15}"
mkdir -p "$out"
echo "== building (release)"
cargo build --release -q -p ferrokeeper-server -p ferrokeeper-loadgen
export FK_CLUSTER_DIR="$out/cluster"
stop() { scripts/cluster.sh stop 3 >/dev/null 2>&1 || true; }
trap stop EXIT
echo "== starting a 3-node ferrokeeper cluster"
# Returns once one node leads and two follow (bounded: FK_START_TIMEOUT, default 60 s), then
# prints each node's mode; exits (and the trap stops the nodes) if the ensemble does not form.
scripts/cluster.sh start 3
target="127.0.0.1:2181,127.0.0.1:2182,127.0.0.1:2183"
for workload in read-heavy write-heavy; do
  echo "== $workload ($duration s)"
  ./target/release/fkload run -w "loadgen/workloads/$workload.yaml" -t "$target" --duration "$duration" \
    --warmup 3 --no-progress --out "$out/$workload.json" --html "$out/$workload.html" | tee "$out/$workload.txt"
done
{
  echo "# ferrokeeper main job: 3-node cluster, read-heavy and write-heavy"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores; cluster on 127.0.0.1:2181-2183; $duration s per workload."
  for workload in read-heavy write-heavy; do
    echo
    echo "## $workload"
    echo
    echo '```'
    cat "$out/$workload.txt"
    echo '```'
  done
} > "$out/summary.md"
echo "== report: $out/summary.md, $out/read-heavy.html, $out/write-heavy.html"
