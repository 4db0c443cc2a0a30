#!/usr/bin/env bash
# A loopback ensemble of ferrokeeper release builds.
#
#   scripts/cluster.sh start|stop|status|restart [N]     (N defaults to 3)
#
# Work directory: $FK_CLUSTER_DIR (default ./cluster). Node i (1..N) has
#   <dir>/node<i>/zoo.cfg, data/ (myid, epoch files, snapshots, log), node.log, node.pid
#   clientPort=$((2180 + i)), server.i=127.0.0.1:$((2880 + i)):$((3880 + i)),
#   metricsProvider.httpPort=$((7000 + i)), 4lw.commands.whitelist=*.
# Ports can be shifted with FK_CLUSTER_PORT_OFFSET. Processes are stopped by the recorded pid.
# start/restart return once the ensemble serves (one leader, the others following; a single
# node: standalone), waiting at most FK_START_TIMEOUT seconds (default 60), then print the
# status; if it does not serve in time (or a node exits) they say so, show the logs' tails and
# exit 1, leaving the nodes running for inspection (stop them with `stop`).
set -euo pipefail

cmd="${1:-status}"
n="${2:-3}"
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${FK_CLUSTER_DIR:-$PWD/cluster}"
offset="${FK_CLUSTER_PORT_OFFSET:-0}"
bin="${FK_BIN:-$root/target/release/ferrokeeper}"

client_port() { echo $((2180 + $1 + offset)); }

build() {
    if [[ -z "${FK_BIN:-}" ]]; then
        (cd "$root" && cargo build --release -q -p ferrokeeper-server --bin ferrokeeper)
    fi
}

configure() {
    local i="$1" node="$dir/node$1"
    mkdir -p "$node/data"
    echo "$i" > "$node/data/myid"
    {
        echo "tickTime=200"
        echo "initLimit=10"
        echo "syncLimit=5"
        echo "maxSessionTimeout=60000"
        echo "dataDir=$node/data"
        echo "clientPort=$(client_port "$i")"
        echo "clientPortAddress=127.0.0.1"
        echo "metricsProvider.httpPort=$((7000 + i + offset))"
        echo "4lw.commands.whitelist=*"
        for j in $(seq 1 "$n"); do
            echo "server.$j=127.0.0.1:$((2880 + j + offset)):$((3880 + j + offset))"
        done
    } > "$node/zoo.cfg"
}

running() {
    local pidfile="$dir/node$1/node.pid"
    [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

start_node() {
    local i="$1" node="$dir/node$1"
    if running "$i"; then
        echo "node $i already running (pid $(cat "$node/node.pid"))"
        return
    fi
    configure "$i"
    "$bin" --config "$node/zoo.cfg" >> "$node/node.log" 2>&1 &
    echo $! > "$node/node.pid"
    echo "node $i started (pid $!, client port $(client_port "$i"))"
}

stop_node() {
    local i="$1" pidfile="$dir/node$1/node.pid"
    if running "$i"; then
        local pid
        pid="$(cat "$pidfile")"
        kill "$pid"
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
        echo "node $i stopped (pid $pid)"
    fi
    rm -f "$pidfile"
}

four_letter() {
    # $1 port, $2 word
    exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
    printf '%s' "$2" >&3
    timeout 5 cat <&3 || true
    exec 3<&- 3>&-
}

status_node() {
    local i="$1" port mode
    port="$(client_port "$i")"
    if ! running "$i"; then
        echo "node $i: not running"
        return
    fi
    mode="$(four_letter "$port" srvr 2>/dev/null | grep '^Mode:' || true)"
    echo "node $i (pid $(cat "$dir/node$i/node.pid"), port $port): ${mode:-Error contacting service (not serving)}"
}

mode_of() {
    four_letter "$(client_port "$1")" srvr 2>/dev/null | sed -n 's/^Mode: //p' || true
}

# Waits until every node serves: N = 1 standalone, else one leader and N - 1 followers.
wait_serving() {
    local limit="${FK_START_TIMEOUT:-60}" deadline modes leaders followers i
    deadline=$((SECONDS + limit))
    while :; do
        leaders=0 followers=0 modes=""
        for i in $(seq 1 "$n"); do
            if ! running "$i"; then
                echo "node $i exited while the ensemble was forming; the end of its log:" >&2
                tail -n 20 "$dir/node$i/node.log" >&2
                return 1
            fi
            local mode
            mode="$(mode_of "$i")"
            modes="$modes node$i=${mode:-not-serving}"
            case "$mode" in
                leader) leaders=$((leaders + 1)) ;;
                follower) followers=$((followers + 1)) ;;
                standalone) [[ "$n" -eq 1 ]] && leaders=1 ;;
            esac
        done
        if [[ "$leaders" -eq 1 && $((leaders + followers)) -eq "$n" ]]; then
            echo "ensemble serving after $((limit - (deadline - SECONDS)))s:$modes"
            return 0
        fi
        if [[ "$SECONDS" -ge "$deadline" ]]; then
            echo "the ensemble did not form within ${limit}s (FK_START_TIMEOUT):$modes" >&2
            for i in $(seq 1 "$n"); do
                echo "--- node $i: $dir/node$i/node.log" >&2
                tail -n 10 "$dir/node$i/node.log" >&2
            done
            return 1
        fi
        sleep 0.2
    done
}

case "$cmd" in
    start)
        build
        for i in $(seq 1 "$n"); do start_node "$i"; done
        wait_serving
        for i in $(seq 1 "$n"); do status_node "$i"; done
        ;;
    stop)
        for i in $(seq 1 "$n"); do stop_node "$i"; done
        ;;
    restart)
        for i in $(seq 1 "$n"); do stop_node "$i"; done
        build
        for i in $(seq 1 "$n"); do start_node "$i"; done
        wait_serving
        for i in $(seq 1 "$n"); do status_node "$i"; done
        ;;
    status)
        for i in $(seq 1 "$n"); do status_node "$i"; done
        ;;
    *)
        echo "usage: $0 start|stop|status|restart [N]" >&2
        exit 2
        ;;
esac
