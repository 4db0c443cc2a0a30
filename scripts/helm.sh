#!/usr/bin/env bash
# `helm lint` and `helm template` for the chart's tests and CI, from whichever Helm is here:
#   1. a `helm` binary on PATH (e.g. from `go install helm.sh/helm/v3/cmd/helm@v3.22.0`, which
#      scripts/helm-deps.sh runs where Go and the Go module proxy are available), else
#   2. Helm's own Go SDK through the PyPI package helm-python-sdk (libhelm_c, Helm v4.2.3),
#      driven by scripts/helm_sdk.py, which accepts the same subcommands and flags used here.
#
#   scripts/helm.sh lint CHART [--strict] [-f VALUES] [--set K=V]...
#   scripts/helm.sh template NAME CHART [--namespace NS] [-f VALUES] [--set K=V]...
set -euo pipefail
if command -v helm >/dev/null 2>&1; then
    exec helm "$@"
fi
exec python3 "$(dirname "$0")/helm_sdk.py" "$@"
