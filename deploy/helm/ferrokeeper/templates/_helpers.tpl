{{/* The release's base name, truncated to DNS limits. */}}
{{- define "ferrokeeper.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "ferrokeeper.headless" -}}
{{- printf "%s-headless" (include "ferrokeeper.fullname" .) -}}
{{- end -}}

{{- define "ferrokeeper.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "ferrokeeper.selector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: ensemble
{{- end -}}

{{/* A member's stable DNS name: <fullname>-<ordinal>.<headless>.<namespace>.svc.cluster.local */}}
{{- define "ferrokeeper.peer" -}}
{{- $root := index . 0 -}}
{{- $ordinal := index . 1 -}}
{{- printf "%s-%d.%s.%s.svc.cluster.local" (include "ferrokeeper.fullname" $root) $ordinal (include "ferrokeeper.headless" $root) $root.Release.Namespace -}}
{{- end -}}

{{/* The client connect string over every member. */}}
{{- define "ferrokeeper.connect" -}}
{{- $root := . -}}
{{- $hosts := list -}}
{{- range $i := until (int .Values.replicas) -}}
{{- $hosts = append $hosts (printf "%s:%d" (include "ferrokeeper.peer" (list $root $i)) (int $root.Values.ports.client)) -}}
{{- end -}}
{{- join "," $hosts -}}
{{- end -}}
