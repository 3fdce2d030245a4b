{{/* Labels shared by every object. */}}
{{- define "accel-agent.labels" -}}
app.kubernetes.io/name: accel-agent
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end }}

{{/* Labels the Service and the DaemonSet select pods by. */}}
{{- define "accel-agent.selectorLabels" -}}
app.kubernetes.io/name: accel-agent
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}
