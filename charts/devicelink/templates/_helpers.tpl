{{/* Labels on everything the chart installs. */}}
{{- define "devicelink.labels" -}}
app.kubernetes.io/part-of: devicelink
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end }}

{{/*
The adaptor kinds devicelink ships and the device resources each drives,
generated from api/src/adaptor.rs (adaptors.yaml, `make crds`). The
operator binds every adaptor pod to the ClusterRole of its kind.
*/}}
{{- define "devicelink.adaptorKinds" -}}
{{ .Files.Get "adaptors.yaml" }}
{{- end }}

{{/* The optional broker's mosquitto.conf (broker.yaml). */}}
{{- define "devicelink.mosquittoConf" -}}
listener {{ .Values.broker.port }}
{{- if eq .Values.broker.auth "managed" }}
allow_anonymous false
plugin {{ include "devicelink.dynsecPlugin" . }}
plugin_opt_config_file /mosquitto/dynsec/dynamic-security.json
{{- else if and (eq .Values.broker.auth "files") .Values.broker.passwordSecret }}
allow_anonymous false
password_file /mosquitto/auth/passwd
{{- else }}
allow_anonymous true
{{- end }}
{{- if and (eq .Values.broker.auth "files") .Values.broker.aclSecret }}
acl_file /mosquitto/acl/acl
{{- end }}
# What the adaptors take from a broker (see docs/api.md, Message sizes):
# a larger message is refused here instead of ending their connections.
max_packet_size 16777216
persistence true
persistence_location /mosquitto/data/
log_dest stdout
log_type error
log_type warning
log_type notice
{{- end }}


{{/* Where the broker image keeps mosquitto's dynamic security plugin. */}}
{{- define "devicelink.dynsecPlugin" -}}
/usr/lib/mosquitto/mosquitto_dynamic_security.so
{{- end }}

{{/*
The broker the operator manages (broker.auth=managed), under every name a
DeviceLink in any namespace may give it; the operator connects to the first.
*/}}
{{- define "devicelink.managedBroker" -}}
{{- if and .Values.broker.enabled (eq .Values.broker.auth "managed") -}}
{{- $names := list -}}
{{- range list "" ".svc" ".svc.cluster.local" -}}
{{- $names = append $names (printf "tcp://devicelink-mqtt.%s%s:%v" $.Release.Namespace . $.Values.broker.port) -}}
{{- end -}}
{{- $names = append $names (printf "tcp://devicelink-mqtt:%v" .Values.broker.port) -}}
{{- join "," $names -}}
{{- end -}}
{{- end }}
