#!/usr/bin/env bash
# Failover side by side at ZooKeeper's default timing (tickTime=2000, initLimit=10, syncLimit=5):
# Apache ZooKeeper 3.8 and ferrokeeper, 3-node ensembles on 127.0.0.1, the same client (a writer
# creating one node at a time through a follower, reconnecting every 10 ms with its session),
# the same faults on the leader: SIGKILL (FK_FAILOVER_KILLS, default 10), SIGSTOP and a
# partition (proxies silence its server links; FK_FAILOVER_SILENT each, default 2). Reports the
# time from the fault to the first acknowledged write sent after it, and whether an idle client
# of a surviving follower kept its connection; checks no acknowledged write was lost.
# Writes benches/failover/<date>.md (or $1).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh >/dev/null
out=${1:-benches/failover/$(date -u +%Y-%m-%d).md}
mkdir -p "$(dirname "$out")"
table=$(mktemp)
FK_FAILOVER_OUT="$table" cargo test --release -q -p ferrokeeper-server --test failover failover_table \
    -- --ignored --nocapture --test-threads=1
{
    echo "# Failover at default timing ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -r))"
    echo
    echo "scripts/bench-failover.sh; Apache ZooKeeper $(dpkg-query -W -f='${Version}' zookeeper 2>/dev/null || echo '?'),"
    echo "ferrokeeper $(git rev-parse --short HEAD). Times in seconds from the fault to the first acknowledged"
    echo "write sent after it."
    echo
    cat "$table"
} > "$out"
rm -f "$table"
echo "wrote $out"
