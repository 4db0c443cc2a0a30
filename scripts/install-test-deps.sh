#!/usr/bin/env bash
# Installs what the integration tests need; idempotent (does nothing when all is present).
#  - Apache ZooKeeper (Debian package `zookeeper`: /usr/share/java/zookeeper.jar, zkCli.sh, java)
#  - kazoo (Python ZooKeeper client) for server/tests/kazoo/smoke.py, pure-sasl for its SASL
#  - a JDK (javac, package `default-jdk-headless`) and Apache Curator (packages
#    `libcurator-{framework,recipes,client}-java`, which bring Guava, SLF4J and the ZooKeeper
#    client jars) for server/tests/curator.rs
#  - the openssl CLI (and the JDK's keytool) for scripts/make-test-certs.sh
#  - Helm for the chart's lint/template and test (scripts/helm-deps.sh)
#  - rustfmt / clippy components (normally already installed)
set -euo pipefail

log() { printf '[install-test-deps] %s\n' "$*"; }

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
fi

if [ -f /usr/share/java/zookeeper.jar ] && [ -x /usr/share/zookeeper/bin/zkCli.sh ] && command -v java >/dev/null 2>&1; then
    log "Apache ZooKeeper: present"
else
    log "Apache ZooKeeper: installing the Debian package 'zookeeper'"
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y zookeeper
fi

if python3 -c 'import kazoo.client' >/dev/null 2>&1; then
    log "kazoo: present"
else
    log "kazoo: installing with pip"
    python3 -m pip install --quiet kazoo || python3 -m pip install --quiet --break-system-packages kazoo
fi

# pure-sasl: kazoo's SASL (DIGEST-MD5) for server/tests/sasl.rs.
if python3 -c 'import puresasl' >/dev/null 2>&1; then
    log "pure-sasl: present"
else
    log "pure-sasl: installing with pip"
    python3 -m pip install --quiet pure-sasl || python3 -m pip install --quiet --break-system-packages pure-sasl
fi

if command -v javac >/dev/null 2>&1; then
    log "javac: present"
else
    log "javac: installing the Debian package 'default-jdk-headless'"
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends default-jdk-headless
fi

# openssl CLI for scripts/make-test-certs.sh (server/tests/tls.rs); keytool comes with the JDK above.
if command -v openssl >/dev/null 2>&1; then
    log "openssl: present"
else
    log "openssl: installing the Debian package 'openssl'"
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends openssl
fi

curator_missing=()
for pkg in libcurator-framework-java libcurator-recipes-java libcurator-client-java; do
    if [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)" != "install ok installed" ]; then
        curator_missing+=("$pkg")
    fi
done
if [ "${#curator_missing[@]}" -eq 0 ]; then
    log "Apache Curator: present"
else
    log "Apache Curator: installing the Debian packages ${curator_missing[*]}"
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${curator_missing[@]}"
fi

bash "$(dirname "$0")/prometheus-deps.sh"  # prometheus + promtool for dashboards/ (loadgen/tests/dashboards.rs)
bash "$(dirname "$0")/helm-deps.sh"        # helm (or Helm's SDK) for deploy/helm (scripts/helm-check.sh, loadgen/tests/helm_chart.rs)
# docker-compose (Debian's, v1): `docker-compose config` validates dashboards/docker-compose.yml
# against the Compose schema; no Docker engine is needed or started.
if command -v docker-compose >/dev/null 2>&1; then
    log "docker-compose: present"
else
    log "docker-compose: installing the Debian package 'docker-compose'"
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends docker-compose
fi
for component in rustfmt clippy; do
    if cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
        log "$component: present"
    else
        log "$component: installing with rustup"
        rustup component add "$component"
    fi
done
log "done"
bash "$(dirname "$0")/fkload-test-deps.sh"
