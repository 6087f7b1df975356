{{/* Labels every object carries; the kustomize install has the first three. */}}
{{- define "rollouts.labels" -}}
app.kubernetes.io/name: rollouts
app.kubernetes.io/part-of: rollouts
{{ include "rollouts.releaseLabels" . }}
{{- end }}

{{/* The labels Helm releases add, which the kustomize install does not have. */}}
{{- define "rollouts.releaseLabels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{/* The controller pods' selector. */}}
{{- define "rollouts.selector" -}}
app.kubernetes.io/name: rollouts
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end }}

{{- define "rollouts.controller" -}}{{ .Release.Name }}-controller{{- end }}
