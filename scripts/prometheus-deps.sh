#!/usr/bin/env bash
# Installs Prometheus (Debian package `prometheus`: /usr/bin/prometheus and /usr/bin/promtool)
# for dashboards/ (server/tests/dashboards.rs, scripts/prometheus-local.sh). Idempotent: does
# nothing when both binaries are present. The package's own system service is stopped and
# disabled: the test and prometheus-local.sh run their own Prometheus on their own ports.
set -euo pipefail

log() { printf '[prometheus-deps] %s\n' "$*"; }

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
fi

if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
    log "prometheus + promtool: present ($(prometheus --version 2>&1 | head -n 1))"
    exit 0
fi

log "installing the Debian package 'prometheus'"
$SUDO apt-get update
# policy-rc.d exit 101 keeps invoke-rc.d from starting the packaged service during install.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ] && [ -w "$(dirname "$policy")" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod +x "$policy"
    created_policy=1
fi
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends prometheus
if [ "$created_policy" = 1 ]; then
    rm -f "$policy"
fi

# Should the service have started anyway (systemd hosts), stop it and keep it from starting.
$SUDO service prometheus stop >/dev/null 2>&1 || true
if command -v systemctl >/dev/null 2>&1; then
    $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
if command -v update-rc.d >/dev/null 2>&1; then
    $SUDO update-rc.d prometheus disable >/dev/null 2>&1 || true
fi

command -v promtool >/dev/null 2>&1 || { log "promtool missing after install"; exit 1; }
log "installed: $(prometheus --version 2>&1 | head -n 1)"
