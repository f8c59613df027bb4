{{/* Labels on everything the chart installs. */}}
{{- define "devicelink.labels" -}}
app.kubernetes.io/part-of: devicelink
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end }}

{{/*
The adaptor kinds devicelink ships and the device resources each drives.
The operator binds every adaptor pod to the ClusterRole of its kind.
*/}}
{{- define "devicelink.adaptorKinds" -}}
dummy: [dummyspecialdevices]
modbus: [modbusdevices]
opcua: [opcuadevices]
{{- end }}
