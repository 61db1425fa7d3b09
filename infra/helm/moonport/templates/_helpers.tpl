{{/* Helpers for the moonport chart. */}}

{{- define "moonport.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name; role objects are "<fullname>-<role>". */}}
{{- define "moonport.fullname" -}}
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

{{/* "<fullname>-<role>", for a dict with root and name. */}}
{{- define "moonport.roleFullname" -}}
{{- printf "%s-%s" (include "moonport.fullname" .root) .name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "moonport.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "moonport.selectorLabels" -}}
app.kubernetes.io/name: {{ include "moonport.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "moonport.labels" -}}
helm.sh/chart: {{ include "moonport.chart" . }}
{{ include "moonport.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: moonport
{{- end }}

{{- define "moonport.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "moonport.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "moonport.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The Secret holding every NATS user's password: nats.passwordsSecret, else the chart's own. */}}
{{- define "moonport.natsSecretName" -}}
{{- default (printf "%s-nats" (include "moonport.fullname" .) | trunc 63 | trimSuffix "-") .Values.nats.passwordsSecret }}
{{- end }}

{{/*
NATS_PASSWORD_<ROLE>, for a dict with root and name: the role's key in that Secret and the
environment variable files/nats-authorization.conf reads its password from. Fails for a role
that file has no user for (regenerate it: python3 infra/local/nats_auth.py --write).
*/}}
{{- define "moonport.natsPasswordKey" -}}
{{- $key := printf "NATS_PASSWORD_%s" (upper .name) }}
{{- if not (regexMatch (printf `[$]%s\b` $key) (.root.Files.Get "files/nats-authorization.conf")) }}
{{- fail (printf "role %s has no NATS user in files/nats-authorization.conf: run python3 infra/local/nats_auth.py --write" .name) }}
{{- end }}
{{- $key }}
{{- end }}

{{/* moonport.yaml and routes.yaml: the data of the role ConfigMap and of the migrate hook's. */}}
{{- define "moonport.configData" -}}
moonport.yaml: |
  # rendered by the moonport Helm chart from .Values.config
  {{- toYaml .Values.config | nindent 2 }}
routes.yaml: |
  {{- default (.Files.Get "files/routes.yaml") .Values.routes | nindent 2 }}
{{- end }}

{{/*
Environment for a moonport container. Call with (dict "root" $ "name" <role or "migrate">
"r" <effective role settings>). Connection settings and secrets' file paths only; the
rest is in moonport.yaml.
*/}}
{{- define "moonport.env" -}}
{{- $root := .root }}
{{- $r := .r }}
{{- $uses := $r.uses | default list -}}
- name: MOONPORT_LOG_LEVEL
  value: {{ default $root.Values.logLevel $r.logLevel | quote }}
- name: MOONPORT_ADMIN_LISTEN
  value: {{ printf "0.0.0.0:%v" $root.Values.ports.admin | quote }}
- name: MOONPORT_NATS_URL
  value: {{ $root.Values.nats.url | quote }}
{{- if ne .name "migrate" }}
{{- /* each role connects as its own NATS user, named after it (migrate never connects) */}}
- name: MOONPORT_NATS_USER
  value: {{ .name | quote }}
- name: MOONPORT_NATS_PASSWORD_FILE
  value: /var/run/secrets/moonport/nats/password
{{- end }}
{{- if has "postgres" $uses }}
- name: MOONPORT_POSTGRES_DSN
  value: {{ $root.Values.postgres.dsn | quote }}
- name: MOONPORT_POSTGRES_PASSWORD_FILE
  value: /var/run/secrets/moonport/postgres/password
{{- end }}
{{- if has "redis" $uses }}
- name: MOONPORT_REDIS_URL
  value: {{ $root.Values.redis.url | quote }}
{{- if $root.Values.redis.passwordSecret.name }}
- name: MOONPORT_REDIS_PASSWORD_FILE
  value: /var/run/secrets/moonport/redis/password
{{- end }}
{{- end }}
{{- if $r.http }}
- name: MOONPORT_GATEWAY_LISTEN
  value: {{ printf "0.0.0.0:%v" $root.Values.ports.http | quote }}
- name: MOONPORT_GATEWAY_ROUTES_FILE
  value: /etc/moonport/config/routes.yaml
{{- end }}
{{- if $r.signingKeys }}
- name: MOONPORT_AUTH_KEYS_DIR
  value: /var/run/secrets/moonport/signing-keys
- name: MOONPORT_AUTH_GENERATE_KEY
  value: "false"
{{- end }}
{{- range $k, $v := $r.env }}
- name: {{ $k }}
  value: {{ $v | quote }}
{{- end }}
{{- with $root.Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Volume mounts matching moonport.env; same arguments. */}}
{{- define "moonport.volumeMounts" -}}
{{- $root := .root }}
{{- $r := .r }}
{{- $uses := $r.uses | default list -}}
- name: config
  mountPath: /etc/moonport/config
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- if ne .name "migrate" }}
- name: nats-password
  mountPath: /var/run/secrets/moonport/nats
  readOnly: true
{{- end }}
{{- if has "postgres" $uses }}
- name: postgres-password
  mountPath: /var/run/secrets/moonport/postgres
  readOnly: true
{{- end }}
{{- if and (has "redis" $uses) $root.Values.redis.passwordSecret.name }}
- name: redis-password
  mountPath: /var/run/secrets/moonport/redis
  readOnly: true
{{- end }}
{{- if $r.signingKeys }}
- name: signing-keys
  mountPath: /var/run/secrets/moonport/signing-keys
  readOnly: true
{{- end }}
{{- with $root.Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Volumes matching moonport.volumeMounts; same arguments plus "configMap" (its name). */}}
{{- define "moonport.volumes" -}}
{{- $root := .root }}
{{- $r := .r }}
{{- $uses := $r.uses | default list -}}
- name: config
  configMap:
    name: {{ .configMap }}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- if ne .name "migrate" }}
{{- /* only this role's own password */}}
- name: nats-password
  secret:
    secretName: {{ include "moonport.natsSecretName" $root }}
    defaultMode: 0440
    items:
      - key: {{ include "moonport.natsPasswordKey" (dict "root" $root "name" .name) }}
        path: password
{{- end }}
{{- if has "postgres" $uses }}
- name: postgres-password
  secret:
    secretName: {{ required "postgres.passwordSecret.name: the Secret with the Postgres password (a role uses postgres)" $root.Values.postgres.passwordSecret.name }}
    defaultMode: 0440
    items:
      - key: {{ $root.Values.postgres.passwordSecret.key }}
        path: password
{{- end }}
{{- if and (has "redis" $uses) $root.Values.redis.passwordSecret.name }}
- name: redis-password
  secret:
    secretName: {{ $root.Values.redis.passwordSecret.name }}
    defaultMode: 0440
    items:
      - key: {{ $root.Values.redis.passwordSecret.key }}
        path: password
{{- end }}
{{- if $r.signingKeys }}
- name: signing-keys
  secret:
    secretName: {{ required "auth.signingKeys.secretName: the Secret with Auth's <kid>.pem signing keys" $root.Values.auth.signingKeys.secretName }}
    defaultMode: 0440
{{- end }}
{{- with $root.Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}
