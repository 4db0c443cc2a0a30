#!/usr/bin/env bash
# CI: `helm lint --strict` and `helm template` of deploy/helm/ferrokeeper, with the default
# values and with the fkload Indexed Job enabled (scripts/helm.sh picks the Helm).
set -euo pipefail
cd "$(dirname "$0")/.."
chart=deploy/helm/ferrokeeper
job=(--set fkload.enabled=true --set fkload.startAt=2026-01-01T00:00:00Z)
scripts/helm.sh lint "$chart" --strict
scripts/helm.sh lint "$chart" --strict "${job[@]}"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
scripts/helm.sh template fk "$chart" --namespace ci >"$out"
grep -q '^kind: StatefulSet' "$out"
scripts/helm.sh template fk "$chart" --namespace ci "${job[@]}" >"$out"
grep -q '^  completionMode: Indexed' "$out"
echo "helm-check: lint and template passed ($(grep -c '^kind:' "$out") objects with the fkload job)"
