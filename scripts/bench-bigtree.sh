#!/usr/bin/env bash
# Big trees, ferrokeeper next to Apache ZooKeeper 3.8 on the same machine, same run (issue 16).
#
#   scripts/bench-bigtree.sh                      # 1 M znodes
#   FK_BIGTREE_SIZES="1000000 10000000" scripts/bench-bigtree.sh
#
# For each size N the tree is generated once as a ZooKeeper snapshot (`bigtree gen`: half the
# nodes under one parent /bench/wide, half as leaves of /bench/deep/a/b/c/leaf; paths ~100 B,
# data 50 B) and imported for ferrokeeper (`ferrokeeper import-zookeeper`), so both servers hold
# the very same tree. Then, for each server:
#   - standalone: start-up time (spawn to serving), RSS (VmRSS) and RSS per znode beyond an empty
#     server's, a raw getChildren of /bench/wide (N/2 children; the reply is far beyond
#     jute.maxbuffer), and 40 s of fkload (open loop, 1000 ops/s, half setData) with snapCount=5000,
#     so several snapshots of the big tree are taken while clients run: the longest response
#     and p99.9 fkload saw, snapshot times (ferrokeeper: its "snapshot written" log lines;
#     ZooKeeper: mntr's snapshottime);
#   - 3 nodes: two members start on the tree, a third with an empty dataDir joins: the time until
#     it follows at the leader's zxid (SNAP sync).
# Results: benches/bigtree/results-<N>.md (table) and .json, plus the raw logs in the work dir
# (FK_BIGTREE_KEEP=1 keeps it). ZooKeeper gets -Xmx FK_BIGTREE_ZK_HEAP (default 4g per member),
# G1; its RSS is what the OS sees (heap grown as the JVM chose), and its live heap after a
# full GC (jcmd) is reported too.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SIZES=${FK_BIGTREE_SIZES:-1000000}
ZK_HEAP=${FK_BIGTREE_ZK_HEAP:-4g}
LOAD_SECS=${FK_BIGTREE_LOAD_SECS:-40}
OUT_DIR=${FK_BIGTREE_OUT:-$ROOT/benches/bigtree}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
nice -n 10 cargo build --release -p ferrokeeper-server -p ferrokeeper-loadgen -p ferrokeeper-benches >&2
BIN=$CARGO_TARGET_DIR/release
WORK=$(mktemp -d /tmp/fk-bigtree.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    if [ "${FK_BIGTREE_KEEP:-0}" != 1 ]; then rm -rf "$WORK"; else echo "kept $WORK" >&2; fi
}
trap cleanup EXIT
mkdir -p "$OUT_DIR"
ZK_CP="/etc/zookeeper/conf:/usr/share/java/zookeeper.jar"
for jar in slf4j-log4j12 log4j-1.2; do
    [ -f "/usr/share/java/$jar.jar" ] && ZK_CP="$ZK_CP:/usr/share/java/$jar.jar"
done

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
four() { # four PORT WORD
    python3 - "$1" "$2" <<'EOF' 2>/dev/null || true
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(sys.argv[2].encode()); out = b""
while True:
    b = s.recv(65536)
    if not b: break
    out += b
print(out.decode(errors="replace"))
EOF
}
mode() { four "$1" srvr | sed -n 's/^Mode: //p'; }
zxid() { four "$1" srvr | sed -n 's/^Zxid: //p'; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
now() { date +%s.%N; }
secs() { printf '%.2f' "$(echo "$(now) - $1" | bc)"; }
ratio() { if [ -n "$2" ] && [ "$(echo "$2 > 0" | bc)" = 1 ]; then printf '%.2f' "$(echo "scale=4; $1 / $2" | bc)"; else echo -; fi; }

# start KIND CFG LOG: starts a server, echoes its pid (callers add it to PIDS: this runs in a
# command substitution's subshell).
start() {
    local kind=$1 cfg=$2 log=$3
    if [ "$kind" = ferrokeeper ]; then
        "$BIN/ferrokeeper" --config "$cfg" >"$log" 2>&1 &
    else
        java "-Xmx$ZK_HEAP" -XX:+UseG1GC -Dzookeeper.admin.enableServer=false \
            -Dzookeeper.root.logger=INFO,CONSOLE -Dzookeeper.jmx.log4j.disable=true \
            -cp "$ZK_CP" org.apache.zookeeper.server.quorum.QuorumPeerMain "$cfg" >"$log" 2>&1 &
    fi
    echo "$!"
}
wait_mode() { # wait_mode PORT REGEX LIMIT_SECS
    local deadline=$(( $(date +%s) + $3 ))
    until mode "$1" | grep -Eq "$2"; do
        [ "$(date +%s)" -lt "$deadline" ] || { echo "timeout waiting for $2 on $1" >&2; return 1; }
        sleep 0.05
    done
}
stop() { kill -9 "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

cfg_standalone() { # cfg_standalone DATADIR PORT
    cat <<EOF
tickTime=2000
dataDir=$1
clientPort=$2
clientPortAddress=127.0.0.1
maxClientCnxns=0
4lw.commands.whitelist=*
admin.enableServer=false
snapCount=5000
autopurge.purgeInterval=0
EOF
}

cat >"$WORK/load.yaml" <<EOF
name: bigtree-load
description: reads and writes on a small key set beside the big tree; writes trigger snapshots.
ops: {get: 50, set: 50}
znodes: 1000
tree: {fanout: 100}
value_size: {dist: fixed, size: 50}
sessions: 8
inflight: 4
duration_secs: $LOAD_SECS
warmup_secs: 0
rate: 1000
EOF

# Baseline RSS of an empty server of each kind.
declare -A EMPTY_RSS
for kind in ferrokeeper zookeeper; do
    d=$WORK/empty-$kind; mkdir -p "$d/data"; port=$(free_port)
    cfg_standalone "$d/data" "$port" >"$d/zoo.cfg"
    pid=$(start "$kind" "$d/zoo.cfg" "$d/server.log"); PIDS+=("$pid")
    wait_mode "$port" standalone 60; sleep 3
    EMPTY_RSS[$kind]=$(rss_kb "$pid"); stop "$pid"
done

for N in $SIZES; do
    W=$WORK/n$N; mkdir -p "$W"
    wide=$(( N / 2 )); deep=$(( N - wide ))
    echo "== $N znodes: generating" >&2
    "$BIN/bigtree" gen --wide "$wide" --deep "$deep" --out "$W/zk-src" >"$W/gen.txt"
    nodes=$(sed -n 's/^nodes=//p' "$W/gen.txt")
    t0=$(now); "$BIN/ferrokeeper" import-zookeeper --data-dir "$W/zk-src" --to "$W/fk-src" >"$W/import.txt"
    import_s=$(secs "$t0")
    snap_bytes_zk=$(stat -c %s "$W"/zk-src/version-2/snapshot.*)
    snap_bytes_fk=$(stat -c %s "$W"/fk-src/fk-snap/snapshot.*)
    declare -A R=()
    for kind in ferrokeeper zookeeper; do
        echo "== $N znodes: $kind standalone" >&2
        d=$W/$kind; mkdir -p "$d"
        if [ "$kind" = ferrokeeper ]; then cp -r "$W/fk-src" "$d/data"; else cp -r "$W/zk-src" "$d/data"; fi
        port=$(free_port)
        cfg_standalone "$d/data" "$port" >"$d/zoo.cfg"
        t0=$(now); pid=$(start "$kind" "$d/zoo.cfg" "$d/server.log"); PIDS+=("$pid")
        wait_mode "$port" standalone 900
        R[$kind.startup_s]=$(secs "$t0")
        sleep 5
        R[$kind.rss_kb]=$(rss_kb "$pid")
        if [ "$kind" = zookeeper ]; then
            # The live heap: what a full GC leaves (G1 keeps the committed heap, so RSS stays).
            jcmd "$pid" GC.run >/dev/null 2>&1 || true
            R[zookeeper.live_kb]=$(jcmd "$pid" GC.heap_info 2>/dev/null | sed -n 's/.*total [0-9]*K, used \([0-9]*\)K.*/\1/p' | head -1)
        fi
        R[$kind.children]=$("$BIN/bigtree" children --port "$port" --path /bench/wide)
        "$BIN/fkload" run -w "$WORK/load.yaml" -t "127.0.0.1:$port" --no-progress --out "$d/load.json" >"$d/load.txt" 2>&1 || true
        R[$kind.load]=$(python3 - "$d/load.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
worst = max(v["response"]["max"] for v in r["ops"].values() if v.get("response"))
p999 = max(v["response"]["p999"] for v in r["ops"].values() if v.get("response"))
errors = sum(v["errors"] for v in r["ops"].values())
print(f"{worst:.1f} {p999:.1f} {errors} {r['totals']['ops']}")
EOF
)
        if [ "$kind" = ferrokeeper ]; then
            R[$kind.snaps]=$(sed 's/\x1b\[[0-9;]*m//g' "$d/server.log" | grep 'snapshot written' | sed -n 's/.*total_ms=\([0-9]*\).*/\1/p' | tr '\n' ' ' || true)
            R[$kind.chunk]=$(sed 's/\x1b\[[0-9;]*m//g' "$d/server.log" | grep 'snapshot written' | sed -n 's/.*longest_chunk_us=\([0-9]*\).*/\1/p' | sort -n | tail -1 || true)
        else
            R[$kind.snaps]=$(four "$port" mntr | awk '/_snapshottime/ {v[$1]=$2} END {printf "avg %s ms, max %s ms (%s snapshots)", v["zk_avg_snapshottime"], v["zk_max_snapshottime"], v["zk_cnt_snapshottime"]}' || true)
            R[$kind.chunk]="-"
        fi
        stop "$pid"
    done

    for kind in ferrokeeper zookeeper; do
        echo "== $N znodes: $kind 3 nodes, SNAP sync of a new member" >&2
        e=$W/$kind-ens; mkdir -p "$e"
        ports=(); servers=""
        for i in 1 2 3; do ports+=("$(free_port)"); servers+="server.$i=127.0.0.1:$(free_port):$(free_port)"$'\n'; done
        pids=()
        for i in 1 2 3; do
            mkdir -p "$e/n$i"
            if [ "$i" -lt 3 ]; then
                if [ "$kind" = ferrokeeper ]; then cp -r "$W/fk-src" "$e/n$i/data"; else cp -r "$W/zk-src" "$e/n$i/data"; fi
            else
                mkdir -p "$e/n$i/data"
            fi
            echo "$i" >"$e/n$i/data/myid"
            { cfg_standalone "$e/n$i/data" "${ports[$((i-1))]}"
              echo "initLimit=300"; echo "syncLimit=10"; printf '%s' "$servers"; } >"$e/n$i/zoo.cfg"
        done
        for i in 1 2; do pids+=("$(start "$kind" "$e/n$i/zoo.cfg" "$e/n$i/server.log")"); PIDS+=("${pids[-1]}"); done
        wait_mode "${ports[0]}" 'leader|follower' 900; wait_mode "${ports[1]}" 'leader|follower' 900
        leader_port=${ports[0]}; [ "$(mode "${ports[1]}")" = leader ] && leader_port=${ports[1]}
        t0=$(now); pids+=("$(start "$kind" "$e/n3/zoo.cfg" "$e/n3/server.log")"); PIDS+=("${pids[-1]}")
        wait_mode "${ports[2]}" follower 900
        deadline=$(( $(date +%s) + 900 ))
        until [ -n "$(zxid "${ports[2]}")" ] && [ "$(zxid "${ports[2]}")" = "$(zxid "$leader_port")" ]; do
            [ "$(date +%s)" -lt "$deadline" ] || { echo "the new member never caught up" >&2; exit 1; }
            sleep 0.05
        done
        R[$kind.sync_s]=$(secs "$t0")
        R[$kind.follower_rss_kb]=$(rss_kb "${pids[2]}")
        for pid in "${pids[@]}"; do stop "$pid"; done
    done

    out=$OUT_DIR/results-$N.md
    {
        echo "# Big tree: $nodes znodes ($wide under one parent, $deep deep leaves; paths ~100 B, data 50 B)"
        echo
        echo "One run of \`scripts/bench-bigtree.sh\` on $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GB", $2/1048576}' /proc/meminfo), $(date -u +%Y-%m-%d)."
        echo "Apache ZooKeeper 3.8 (Debian) with -Xmx$ZK_HEAP (G1). Snapshot files: ZooKeeper $snap_bytes_zk B, ferrokeeper $snap_bytes_fk B; \`import-zookeeper\` took ${import_s} s."
        echo
        echo "| | ferrokeeper | Apache ZooKeeper | ratio |"
        echo "|---|---|---|---|"
        fr=${R[ferrokeeper.rss_kb]}; zr=${R[zookeeper.rss_kb]}
        fper=$(( (fr - EMPTY_RSS[ferrokeeper]) * 1024 / nodes )); zper=$(( (zr - EMPTY_RSS[zookeeper]) * 1024 / nodes ))
        echo "| RSS with the tree (standalone) | $(( fr / 1024 )) MB | $(( zr / 1024 )) MB | $(ratio "$fr" "$zr") |"
        echo "| RSS per znode (beyond an empty server: $(( EMPTY_RSS[ferrokeeper] / 1024 )) / $(( EMPTY_RSS[zookeeper] / 1024 )) MB) | $fper B | $zper B | $(ratio "$fper" "$zper") |"
        zlive=${R[zookeeper.live_kb]:-0}
        echo "| ZooKeeper's live heap after a full GC, per znode | | $(( zlive * 1024 / nodes )) B | $(ratio "$fper" "$(( zlive * 1024 / nodes ))") |"
        echo "| start-up (spawn to serving) | ${R[ferrokeeper.startup_s]} s | ${R[zookeeper.startup_s]} s | $(ratio "${R[ferrokeeper.startup_s]}" "${R[zookeeper.startup_s]}") |"
        echo "| snapshot times under load | ${R[ferrokeeper.snaps]}ms (each; longest core-task chunk ${R[ferrokeeper.chunk]} µs) | ${R[zookeeper.snaps]} | |"
        read -r fmax fp999 ferr fops <<<"${R[ferrokeeper.load]}"; read -r zmax zp999 zerr zops <<<"${R[zookeeper.load]}"
        echo "| longest client response during snapshots (fkload, 1000 ops/s) | $fmax ms | $zmax ms | |"
        echo "| p99.9 response | $fp999 ms | $zp999 ms | |"
        echo "| fkload errors / ops | $ferr / $fops | $zerr / $zops | |"
        echo "| SNAP sync of a new 3rd member (start to following at the leader's zxid) | ${R[ferrokeeper.sync_s]} s | ${R[zookeeper.sync_s]} s | $(ratio "${R[ferrokeeper.sync_s]}" "${R[zookeeper.sync_s]}") |"
        echo "| RSS of the synced member | $(( R[ferrokeeper.follower_rss_kb] / 1024 )) MB | $(( R[zookeeper.follower_rss_kb] / 1024 )) MB | |"
        echo
        echo "getChildren of /bench/wide ($wide children) with a raw client that accepts any frame:"
        echo
        echo "- ferrokeeper: ${R[ferrokeeper.children]}"
        echo "- ZooKeeper:   ${R[zookeeper.children]}"
    } >"$out"
    cat "$out"
done
