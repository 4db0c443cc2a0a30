#!/usr/bin/env bash
# Prometheus (Debian's package, see scripts/prometheus-deps.sh) scraping a local ensemble started
# by scripts/cluster.sh and fkload, with dashboards/prometheus.yml; for users without Docker.
#
#   scripts/prometheus-local.sh start|stop|status
#
#   scripts/cluster.sh start 3                      # metrics on 127.0.0.1:7001-7003
#   scripts/prometheus-local.sh start               # Prometheus on 127.0.0.1:9090
#   target/release/fkload run -w loadgen/workloads/read-heavy.yaml \
#       -t 127.0.0.1:2181,127.0.0.1:2182,127.0.0.1:2183 --duration 600 --metrics-port 9464
#   # open http://127.0.0.1:9090/graph, or point a Grafana at it (dashboards/README.md)
#   scripts/prometheus-local.sh stop
#
# Environment: FK_PROM_DIR (default ./prometheus-local: config copy, TSDB, log, pid),
# FK_PROM_PORT (default 9090), FK_CLUSTER_PORT_OFFSET (as for cluster.sh: shifts the node metrics
# ports 7001-7003), FK_FKLOAD_PORT (default 9464). The process is stopped by its recorded pid.
set -euo pipefail

cmd="${1:-status}"
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${FK_PROM_DIR:-$PWD/prometheus-local}"
port="${FK_PROM_PORT:-9090}"
offset="${FK_CLUSTER_PORT_OFFSET:-0}"
fkload_port="${FK_FKLOAD_PORT:-9464}"
pidfile="$dir/prometheus.pid"

running() {
    [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

start() {
    if running; then
        echo "prometheus already running (pid $(cat "$pidfile"), http://127.0.0.1:$port)"
        return
    fi
    if ! command -v prometheus >/dev/null 2>&1; then
        echo "prometheus not found: run scripts/prometheus-deps.sh" >&2
        exit 1
    fi
    mkdir -p "$dir/data"
    # The shipped config with the ports this cluster / fkload use.
    sed -e "s/127\.0\.0\.1:7001/127.0.0.1:$((7001 + offset))/" \
        -e "s/127\.0\.0\.1:7002/127.0.0.1:$((7002 + offset))/" \
        -e "s/127\.0\.0\.1:7003/127.0.0.1:$((7003 + offset))/" \
        -e "s/127\.0\.0\.1:9464/127.0.0.1:$fkload_port/" \
        "$root/dashboards/prometheus.yml" > "$dir/prometheus.yml"
    if command -v promtool >/dev/null 2>&1; then
        promtool check config "$dir/prometheus.yml" >/dev/null
    fi
    prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
        --storage.tsdb.retention.time=2d --web.listen-address="127.0.0.1:$port" \
        >> "$dir/prometheus.log" 2>&1 &
    echo $! > "$pidfile"
    for _ in $(seq 1 50); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "prometheus started (pid $(cat "$pidfile"), http://127.0.0.1:$port, dir $dir)"
            return
        fi
        running || break
        sleep 0.2
    done
    echo "prometheus did not come up; see $dir/prometheus.log" >&2
    tail -n 20 "$dir/prometheus.log" >&2 || true
    exit 1
}

stop() {
    if running; then
        local pid
        pid="$(cat "$pidfile")"
        kill "$pid"
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
        echo "prometheus stopped (pid $pid)"
    fi
    rm -f "$pidfile"
}

case "$cmd" in
    start) start ;;
    stop) stop ;;
    restart) stop; start ;;
    status)
        if running; then
            echo "prometheus running (pid $(cat "$pidfile"), http://127.0.0.1:$port)"
        else
            echo "prometheus: not running"
        fi
        ;;
    *)
        echo "usage: $0 start|stop|status|restart" >&2
        exit 2
        ;;
esac
