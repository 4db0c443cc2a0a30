#!/usr/bin/env bash
# Installs a Helm for the chart's CI checks and test (scripts/helm.sh uses it); idempotent.
#  1. `helm` on PATH: nothing to do.
#  2. A Go toolchain (>= 1.21, so GOTOOLCHAIN can fetch the one Helm's go.mod asks for) and the
#     Go module proxy reachable: `go install helm.sh/helm/v3/cmd/helm@v3.22.0` into /usr/local/bin.
#     (Debian bookworm's golang-go is 1.19, too old; a machine of the `go` kind has a new one.)
#  3. Otherwise Helm's own Go SDK from PyPI, `helm-python-sdk` (libhelm_c, Helm v4.2.3), which
#     scripts/helm_sdk.py drives for `lint` and `template`.
set -euo pipefail
log() { printf '[helm-deps] %s\n' "$*"; }
HELM_VERSION=v3.22.0
SDK_VERSION=0.2.2

if command -v helm >/dev/null 2>&1; then
    log "helm: present ($(helm version --short 2>/dev/null || echo '?'))"
    exit 0
fi
if command -v go >/dev/null 2>&1; then
    log "helm: go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION ($(go version))"
    if GOBIN=/usr/local/bin timeout 900 go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"; then
        log "helm: installed $(helm version --short 2>/dev/null || true)"
        exit 0
    fi
    log "helm: go install failed (no module proxy here?); falling back to Helm's SDK from PyPI"
fi
if python3 -c 'import helm_python' >/dev/null 2>&1; then
    log "helm-python-sdk: present"
else
    log "helm-python-sdk: installing $SDK_VERSION with pip"
    python3 -m pip install --quiet "helm-python-sdk==$SDK_VERSION" \
        || python3 -m pip install --quiet --break-system-packages "helm-python-sdk==$SDK_VERSION"
fi
