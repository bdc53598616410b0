{{/* Names and labels. */}}
{{- define "lockgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "lockgate.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "lockgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "lockgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "lockgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "lockgate.labels" -}}
helm.sh/chart: {{ include "lockgate.chart" . }}
{{ include "lockgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: gateway
{{- end }}

{{- define "lockgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "lockgate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "lockgate.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* True (non-empty) when the gateway runs on PostgreSQL. */}}
{{- define "lockgate.postgres" -}}
{{- if or .Values.database.url .Values.database.existingSecret }}true{{ end }}
{{- end }}

{{/* The Secret holding the database URL. */}}
{{- define "lockgate.databaseSecret" -}}
{{- default (include "lockgate.fullname" .) .Values.database.existingSecret }}
{{- end }}

{{/* The Secret holding the keys. */}}
{{- define "lockgate.keysSecret" -}}
{{- default (include "lockgate.fullname" .) .Values.keys.existingSecret }}
{{- end }}

{{/* True (non-empty) when the chart renders its own Secret. */}}
{{- define "lockgate.ownSecret" -}}
{{- $k := .Values.keys }}
{{- if or (and .Values.database.url (not .Values.database.existingSecret)) (and (not $k.existingSecret) (or $k.blockKey $k.jwtSecret $k.satpIdentityKey $k.connectorKey)) }}true{{ end }}
{{- end }}

{{/*
Refuses configurations that cannot work; called from the Deployment.
*/}}
{{- define "lockgate.validate" -}}
{{- $replicas := int .Values.replicaCount }}
{{- if and (gt $replicas 1) (not (include "lockgate.postgres" .)) }}
{{- fail "replicaCount > 1 needs PostgreSQL (database.url or database.existingSecret): the embedded SQLite database belongs to one process" }}
{{- end }}
{{- if and (gt $replicas 1) .Values.persistence.enabled }}
{{- fail "persistence (the SQLite data volume) is for one replica only: set replicaCount to 1 or use PostgreSQL without persistence" }}
{{- end }}
{{- $k := .Values.keys }}
{{- if and (gt $replicas 1) (not $k.existingSecret) (not (and $k.blockKey $k.jwtSecret $k.satpIdentityKey $k.connectorKey)) }}
{{- fail "replicaCount > 1 needs the shared keys (keys.existingSecret, or keys.blockKey, jwtSecret, satpIdentityKey and connectorKey): each replica would otherwise generate its own" }}
{{- end }}
{{- if and .Values.configToml .Values.existingConfigSecret }}
{{- fail "give at most one of configToml and existingConfigSecret" }}
{{- end }}
{{- if and .Values.podDisruptionBudget.enabled (eq (kindIs "invalid" .Values.podDisruptionBudget.minAvailable) (kindIs "invalid" .Values.podDisruptionBudget.maxUnavailable)) }}
{{- fail "podDisruptionBudget: give exactly one of minAvailable and maxUnavailable" }}
{{- end }}
{{- end }}

{{/*
TOML rendering of `.Values.config`. Helm reads every number in values as a
float64, so whole numbers are written back as integers (the gateway's
settings are integers); strings are JSON strings, which are valid TOML basic
strings. Top-level scalars first, then tables ([ledger]), then arrays of
tables ([[peers]]); anything deeper is an inline table or array. Null values
are left out (TOML has no null).
*/}}
{{- define "lockgate.toml.key" -}}
{{- if regexMatch "^[A-Za-z0-9_-]+$" . }}{{ . }}{{ else }}{{ toJson . }}{{ end }}
{{- end }}

{{- define "lockgate.toml.value" -}}
{{- $v := . }}
{{- if kindIs "map" $v }}
{{- $items := list }}
{{- range $k, $x := $v }}
{{- if not (kindIs "invalid" $x) }}
{{- $items = append $items (printf "%s = %s" (include "lockgate.toml.key" $k) (include "lockgate.toml.value" $x)) }}
{{- end }}
{{- end }}
{{- if $items }}{ {{ join ", " $items }} }{{ else }}{}{{ end }}
{{- else if kindIs "slice" $v }}
{{- $items := list }}
{{- range $x := $v }}
{{- $items = append $items (include "lockgate.toml.value" $x) }}
{{- end }}[{{ join ", " $items }}]
{{- else if kindIs "string" $v }}
{{- toJson $v }}
{{- else if or (kindIs "float64" $v) (kindIs "float32" $v) }}
{{- if eq (float64 $v) (float64 (int64 $v)) }}{{ int64 $v }}{{ else }}{{ $v }}{{ end }}
{{- else }}
{{- $v }}
{{- end }}
{{- end }}

{{/* "true" when . is a non-empty list of maps (an array of tables). */}}
{{- define "lockgate.toml.isTableArray" -}}
{{- if and (kindIs "slice" .) (gt (len .) 0) }}{{ if kindIs "map" (first .) }}true{{ end }}{{ end }}
{{- end }}

{{- define "lockgate.toml.table" -}}
{{- range $k, $v := . }}
{{- if not (kindIs "invalid" $v) }}
{{ include "lockgate.toml.key" $k }} = {{ include "lockgate.toml.value" $v }}
{{- end }}
{{- end }}
{{- end }}

{{- define "lockgate.toml" -}}
{{- $config := . -}}
# Rendered by the Lockgate Helm chart from .Values.config.
{{- range $k, $v := $config }}
{{- if not (or (kindIs "invalid" $v) (kindIs "map" $v) (include "lockgate.toml.isTableArray" $v)) }}
{{ include "lockgate.toml.key" $k }} = {{ include "lockgate.toml.value" $v }}
{{- end }}
{{- end }}
{{- range $k, $v := $config }}
{{- if kindIs "map" $v }}

[{{ include "lockgate.toml.key" $k }}]
{{- include "lockgate.toml.table" $v }}
{{- end }}
{{- end }}
{{- range $k, $v := $config }}
{{- if include "lockgate.toml.isTableArray" $v }}
{{- range $item := $v }}

[[{{ include "lockgate.toml.key" $k }}]]
{{- include "lockgate.toml.table" $item }}
{{- end }}
{{- end }}
{{- end }}
{{ end }}

{{/* The configuration file's text, whichever way it is given. */}}
{{- define "lockgate.configText" -}}
{{- if .Values.configToml }}
{{- .Values.configToml }}
{{- else }}
{{- include "lockgate.toml" .Values.config }}
{{- end }}
{{- end }}
