#!/usr/bin/env bash
# Installs what fkload's tests need beyond the Rust toolchain: headless Chromium (the HTML report
# test) and Apache ZooKeeper (the comparison runs). Idempotent; does nothing when all are present.
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
[ -f /usr/share/java/zookeeper.jar ] || need+=(zookeeper)  # not zookeeperd: no system service on 2181
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" fonts-dejavu-core
fi
